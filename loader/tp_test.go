package loader

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// The test binary doubles as the rank program cluster.Launch starts: with
// LOADER_TEST_HELPER set it runs that instead of the tests.
func TestMain(m *testing.M) {
	helpers := map[string]func(string) error{"tp": tpRank, "tp-deepseek": tpDeepSeekRank,
		"stream": func(string) error { return streamRank() }}
	if rank, ok := helpers[os.Getenv("LOADER_TEST_HELPER")]; ok {
		if err := rank(os.Getenv("LOADER_TEST_DIR")); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var q4 = mlx.Quantization{GroupSize: 32, Bits: 4}

// tpCheckpoint writes a two-layer Llama-named checkpoint: layer 0 in
// float32, layer 1 quantized to 4 bits by MLX, each with an attention
// input/output pair (q_proj, o_proj) and an MLP pair (up_proj, down_proj).
func tpCheckpoint(t *testing.T) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	var tensors []safetensors.TensorData
	addArray := func(name string, a *mlx.Array) {
		b, err := a.Bytes()
		require.NoError(t, err)
		dt := map[mlx.Dtype]safetensors.Dtype{mlx.Float32: safetensors.F32, mlx.Uint32: safetensors.U32}[a.Dtype()]
		shape := []int64{}
		for _, d := range a.Shape() {
			shape = append(shape, int64(d))
		}
		tensors = append(tensors, safetensors.TensorData{Name: name, Dtype: dt, Shape: shape, Data: b})
	}
	mats := map[string][2]int{"self_attn.q_proj": {64, 64}, "self_attn.o_proj": {64, 64}, "mlp.up_proj": {128, 64}, "mlp.down_proj": {64, 128}}
	for layer, quantized := range []bool{false, true} {
		for mod, shape := range mats {
			v := make([]float32, shape[0]*shape[1])
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.1)
			}
			w, err := mlx.FromSlice(v, shape[0], shape[1])
			require.NoError(t, err)
			name := fmt.Sprintf("model.layers.%d.%s", layer, mod)
			if !quantized {
				addArray(name+".weight", w)
				continue
			}
			wq, s, b, err := mlx.Quantize(w, q4)
			require.NoError(t, err)
			addArray(name+".weight", wq)
			addArray(name+".scales", s)
			addArray(name+".biases", b)
			mlx.FreeAll(w, wq, s, b)
		}
	}
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.TensorData{tensors}, nil))
	return dir
}

// linear applies x @ Wᵀ for a float or quantized weight of the arrays.
func linear(arrays map[string]*mlx.Array, name string, x *mlx.Array) (*mlx.Array, error) {
	if s, ok := arrays[name+".scales"]; ok {
		return mlx.QuantizedMatmul(x, arrays[name+".weight"], s, arrays[name+".biases"], true, q4)
	}
	wt, err := mlx.Transpose(arrays[name+".weight"])
	if err != nil {
		return nil, err
	}
	defer wt.Free()
	return mlx.Matmul(x, wt)
}

// block runs in → out (all-to-sharded, then sharded-to-all) and all-sums
// the partial results when g has more than one rank.
func block(arrays map[string]*mlx.Array, in, out string, x *mlx.Array, g *mlx.Group) ([]float32, error) {
	h, err := linear(arrays, in, x)
	if err != nil {
		return nil, err
	}
	defer h.Free()
	y, err := linear(arrays, out, h)
	if err != nil {
		return nil, err
	}
	defer y.Free()
	if g != nil && g.Size() > 1 {
		s, err := mlx.AllSum(y, g, mlx.CPUStream())
		if err != nil {
			return nil, err
		}
		defer s.Free()
		y = s
	}
	return mlx.ToSlice[float32](y)
}

func tpRank(dir string) error {
	g, err := mlx.DistributedInit(true, "ring")
	if err != nil {
		return err
	}
	load := func(rank, n int) (map[string]*mlx.Array, error) {
		g, err := newTestGuard()
		if err != nil {
			return nil, err
		}
		l, err := Open(dir, Options{Guard: g, PlanOptions: PlanOptions{Rank: rank, WorldSize: n, Rules: LlamaRules(0, 0)}})
		if err != nil {
			return nil, err
		}
		defer l.Close()
		return l.LoadAll(context.Background())
	}
	shard, err := load(g.Rank(), g.Size())
	if err != nil {
		return err
	}
	full, err := load(0, 1)
	if err != nil {
		return err
	}
	xs := make([]float32, 4*64)
	for i := range xs {
		xs[i] = float32(math.Sin(float64(i)))
	}
	x, err := mlx.FromSlice(xs, 4, 64)
	if err != nil {
		return err
	}
	for layer := range 2 {
		p := fmt.Sprintf("model.layers.%d.", layer)
		for _, pair := range [][2]string{{"self_attn.q_proj", "self_attn.o_proj"}, {"mlp.up_proj", "mlp.down_proj"}} {
			got, err := block(shard, p+pair[0], p+pair[1], x, g)
			if err != nil {
				return err
			}
			want, err := block(full, p+pair[0], p+pair[1], x, nil)
			if err != nil {
				return err
			}
			var diff, scale float64
			for i := range want {
				diff = max(diff, math.Abs(float64(got[i]-want[i])))
				scale = max(scale, math.Abs(float64(want[i])))
			}
			if diff > 1e-4*max(scale, 1) {
				return fmt.Errorf("layer %d %s→%s: max |sharded − unsharded| = %g (scale %g)", layer, pair[0], pair[1], diff, scale)
			}
			fmt.Printf("rank %d/%d layer %d %s->%s ok: max diff %.3g of %.3g\n", g.Rank(), g.Size(), layer, pair[0], pair[1], diff, scale)
		}
	}
	return nil
}

func TestTwoRanksOverRingComputeWhatOneRankComputesUnsharded(t *testing.T) {
	requireMLX(t)
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		unavailable(t, "MLX has no ring back-end: %v", err)
	}
	dir := tpCheckpoint(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]}, N: 2,
		Env:    []string{"LOADER_TEST_HELPER=tp", "LOADER_TEST_DIR=" + dir},
		Stdout: &out, Stderr: &out, Grace: 2 * time.Second,
	})
	require.NoError(t, err, out.String())
	for _, r := range []string{"[0] rank 0/2", "[1] rank 1/2"} {
		assert.Equal(t, 4, strings.Count(out.String(), r), out.String())
	}
	t.Log(out.String())
}
