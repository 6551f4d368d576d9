package model

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// The test binary doubles as the rank program cluster.Launch starts: with
// MODEL_TEST_HELPER set it runs one rank's job instead of the tests.
func TestMain(m *testing.M) {
	if job := os.Getenv("MODEL_TEST_HELPER"); job != "" {
		if err := rankMain(job); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if ckptRoot != "" {
		os.RemoveAll(ckptRoot)
	}
	os.Exit(code)
}

// Synthetic float32 checkpoints, a few layers wide enough to divide over
// two (and, for qwen3, three) ranks.
var specs = map[string]ckptgen.Spec{
	"llama": {ModelType: ckptgen.LlamaType, Vocab: 1024, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32,
		Intermediate: 256, Dtype: "F32", Files: 1},
	"qwen2": {ModelType: ckptgen.Qwen2Type, Vocab: 1024, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32,
		Intermediate: 256, Dtype: "F32", Files: 1, TieEmbeddings: true},
	"qwen3": {ModelType: ckptgen.Qwen3Type, Vocab: 1024, Hidden: 192, Layers: 2, Heads: 6, KVHeads: 6, HeadDim: 32,
		Intermediate: 384, Dtype: "F32", Files: 1, TieEmbeddings: true},
	// Six layers, for pipelines of two and three stages.
	"llama-6": {ModelType: ckptgen.LlamaType, Vocab: 1024, Hidden: 128, Layers: 6, Heads: 4, KVHeads: 2, HeadDim: 32,
		Intermediate: 256, Dtype: "F32", Files: 2},
	// Two wider layers, for long prefills through stages of two ranks.
	"llama-wide": {ModelType: ckptgen.LlamaType, Vocab: 1024, Hidden: 512, Layers: 2, Heads: 8, KVHeads: 4, HeadDim: 64,
		Intermediate: 256, Dtype: "F32", Files: 1},
	// Kimi K2.5: one dense layer, two MoE layers with group-limited
	// routing (4 groups, 2 chosen), float32.
	"kimi": {ModelType: ckptgen.KimiK25Type, Vocab: 1024, Hidden: 128, Layers: 3, Heads: 4, Intermediate: 256,
		Experts: 8, ActiveExperts: 2, SharedExperts: 1, MoEIntermediate: 64, FirstDense: 1, QLoRARank: 64,
		KVLoRARank: 64, QKNopeHeadDim: 32, QKRopeHeadDim: 16, VHeadDim: 32, NGroup: 4, TopKGroup: 2, Dtype: "F32", Files: 2},
	// The same quantized, mixed: 4-bit by default, the experts' down
	// projection of layer 1 at 8 bits, layer 2's q_b_proj at 2 bits, the
	// head unquantized.
	"kimi-mixed": {ModelType: ckptgen.KimiK25Type, Vocab: 1024, Hidden: 128, Layers: 3, Heads: 4, Intermediate: 256,
		Experts: 8, ActiveExperts: 2, SharedExperts: 1, MoEIntermediate: 128, FirstDense: 1, QLoRARank: 64,
		KVLoRARank: 64, QKNopeHeadDim: 32, QKRopeHeadDim: 16, VHeadDim: 32, NGroup: 4, TopKGroup: 2, Dtype: "F32", Files: 2,
		Quant: &ckptgen.Quantization{GroupSize: 32, Bits: 4},
		QuantOverrides: map[string]*ckptgen.Quantization{
			"language_model.model.layers.1.mlp.switch_mlp.down_proj": {GroupSize: 32, Bits: 8},
			"language_model.model.layers.2.self_attn.q_b_proj":       {GroupSize: 64, Bits: 2},
			"language_model.lm_head":                                 nil,
		}},
}

// The dtypes real checkpoints have, in which scalars must keep the arrays'
// dtype as Python's do: bfloat16 and float16 variants of the float32
// specs. The Kimis are kimi-mixed without its overrides (4-bit
// throughout); MLX's CPU gather_mm takes float32 only, so the float16
// Kimi's experts must be quantized anyway.
func init() {
	for name, v := range map[string]struct{ base, dtype string }{
		"kimi-bf16":  {"kimi-mixed", "BF16"},
		"kimi-f16":   {"kimi-mixed", "F16"},
		"qwen3-bf16": {"qwen3", "BF16"},
		"llama-bf16": {"llama", "BF16"},
	} {
		s := specs[v.base]
		s.Dtype, s.QuantOverrides = v.dtype, nil
		specs[name] = s
	}
}

var (
	ckptRoot string
	ckptMu   sync.Mutex
)

// checkpoint writes the named spec once per test binary and returns its
// directory.
func checkpoint(t testing.TB, name string) string {
	t.Helper()
	ckptMu.Lock()
	defer ckptMu.Unlock()
	if ckptRoot == "" {
		dir, err := os.MkdirTemp("", "model-test-")
		require.NoError(t, err)
		ckptRoot = dir
	}
	dir := filepath.Join(ckptRoot, name)
	_, err := ckptgen.Write(context.Background(), dir, specs[name], &ckptgen.Options{Seed: 7})
	require.NoError(t, err)
	return dir
}

// prompts are random token ids of the lengths the parity tests use: one
// token, a short prompt, one past a KV step of 8, and one long enough for
// SwitchGLU's sorted gather (64 or more token-expert pairs).
func prompts(vocab int) [][]int {
	rng := rand.New(rand.NewPCG(3, 4))
	var out [][]int
	for _, n := range []int{1, 5, 12, 70} {
		p := make([]int, n)
		for i := range p {
			p[i] = rng.IntN(vocab)
		}
		out = append(out, p)
	}
	return out
}

func idsArg(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

func parseIDs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func requireMLX(t testing.TB) {
	t.Helper()
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX: %v", err)
	}
	testenv.Python(t)
}

func requireRing(t testing.TB) {
	t.Helper()
	requireMLX(t)
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		testenv.Unavailable(t, "MLX has no ring back-end: %v", err)
	}
}

// referencePath is the mlx-lm reference script.
func referencePath(t testing.TB) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "reference.py"))
	require.NoError(t, err)
	return p
}

// refs keeps mlx-lm's logits by checkpoint, rank count and prompts, so
// that the tests that compare against the same reference run it once.
var (
	refs   = map[string][][]float32{}
	refsMu sync.Mutex
)

// mlxlmLogits runs mlx-lm on dir over n ranks and returns the logits of
// every prompt.
func mlxlmLogits(t *testing.T, dir string, n int, ps [][]int) [][]float32 {
	t.Helper()
	key := fmt.Sprint(dir, n, ps)
	refsMu.Lock()
	defer refsMu.Unlock()
	if r, ok := refs[key]; ok {
		return r
	}
	out := filepath.Join(t.TempDir(), "ref.safetensors")
	args := []string{referencePath(t), "logits", dir, out}
	for _, p := range ps {
		args = append(args, idsArg(p))
	}
	launch(t, n, append([]string{testenv.Python(t)}, args...), nil)
	refs[key] = readLogits(t, out, len(ps))
	return refs[key]
}

// launch runs command on n ranks over ring (directly when n is 1).
func launch(t *testing.T, n int, command []string, env []string) string {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: command, N: n, Env: append(env, "PYTHONDONTWRITEBYTECODE=1"),
		Stdout: &out, Stderr: &out, Grace: 2 * time.Second,
	})
	require.NoError(t, err, out.String())
	return out.String()
}

// oursLogits runs this package on dir over n ranks (the test binary as the
// rank program) and returns the logits of every prompt.
func oursLogits(t *testing.T, dir string, n int, ps [][]int) [][]float32 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ours.safetensors")
	var args []string
	for _, p := range ps {
		args = append(args, idsArg(p))
	}
	launch(t, n, []string{os.Args[0]}, []string{"MODEL_TEST_HELPER=logits", "MODEL_TEST_DIR=" + dir,
		"MODEL_TEST_OUT=" + out, "MODEL_TEST_PROMPTS=" + strings.Join(args, ";")})
	return readLogits(t, out, len(ps))
}

func readLogits(t testing.TB, path string, n int) [][]float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := make([][]float32, n)
	for i := range out {
		b, err := f.Data(fmt.Sprintf("logits_%d", i))
		require.NoError(t, err)
		out[i] = make([]float32, len(b)/4)
		for j := range out[i] {
			out[i][j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
	}
	return out
}

func writeLogits(path string, rows [][]float32, vocab int) error {
	var ts []safetensors.TensorData
	for i, r := range rows {
		b := make([]byte, 4*len(r))
		for j, v := range r {
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(v))
		}
		ts = append(ts, safetensors.TensorData{Name: fmt.Sprintf("logits_%d", i), Dtype: safetensors.F32,
			Shape: []int64{int64(len(r) / vocab), int64(vocab)}, Data: b})
	}
	return safetensors.WriteFile(path, ts, nil)
}

// maxDiff returns the largest |a−b| and whether every element is equal.
func maxDiff(t testing.TB, a, b []float32) (float64, bool) {
	t.Helper()
	require.Equal(t, len(a), len(b), "logit counts")
	var d float64
	same := true
	for i := range a {
		if a[i] != b[i] {
			same = false
		}
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d, same
}

// rankMain is one rank of a launched job.
func rankMain(job string) error {
	ctx := context.Background()
	var jo jaccl.Options
	if v := os.Getenv("MODEL_TEST_GROUP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return err
		}
		jo.Timeout = d
	}
	g, err := jaccl.Init(ctx, jo)
	if err != nil {
		return err
	}
	defer g.Close()
	if job == "chainsum" {
		return chainSumMain(g)
	}
	o := Options{Group: g}
	if shares := os.Getenv("MODEL_TEST_PLACE"); shares != "" {
		tpn, _ := strconv.Atoi(os.Getenv("MODEL_TEST_TP"))
		if o.Placement, err = placeByShares(os.Getenv("MODEL_TEST_DIR"), shares, tpn); err != nil {
			return err
		}
	}
	m, err := Load(ctx, os.Getenv("MODEL_TEST_DIR"), o)
	if err != nil {
		return err
	}
	defer m.Free()
	switch job {
	case "logits":
		var rows [][]float32
		for _, arg := range strings.Split(os.Getenv("MODEL_TEST_PROMPTS"), ";") {
			ids, err := parseIDs(arg)
			if err != nil {
				return err
			}
			l, err := m.Logits(ctx, ids)
			if err != nil {
				return err
			}
			rows = append(rows, l)
		}
		if g.Rank() == 0 {
			return writeLogits(os.Getenv("MODEL_TEST_OUT"), rows, m.Config.VocabSize)
		}
		return nil
	case "halt":
		return haltRank(ctx, g, m)
	case "freeze":
		return freezeRank(ctx, g, m)
	case "generate":
		ids, err := parseIDs(os.Getenv("MODEL_TEST_PROMPTS"))
		if err != nil {
			return err
		}
		n, _ := strconv.Atoi(os.Getenv("MODEL_TEST_TOKENS"))
		var got []int
		prefill, _ := strconv.Atoi(os.Getenv("MODEL_TEST_PREFILL"))
		gen := m.Generate(ctx, ids, GenerateOptions{MaxTokens: n, Stop: []int{}, PrefillStep: prefill})
		for tok, err := range gen.Tokens() {
			if err != nil {
				return err
			}
			got = append(got, tok.ID)
		}
		if g.Rank() == 0 {
			b, err := json.Marshal(map[string]any{"ids": got})
			if err != nil {
				return err
			}
			return os.WriteFile(os.Getenv("MODEL_TEST_OUT"), b, 0o644)
		}
		return nil
	}
	return fmt.Errorf("unknown job %q", job)
}

// chainPart is rank r's part in the chain-sum tests: n values in [-1, 1).
func chainPart(r, n int) []float32 {
	rng := rand.New(rand.NewPCG(uint64(r), 9))
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = rng.Float32()*2 - 1
	}
	return xs
}

// chainSumMain sums this rank's part over its stage of MODEL_TEST_TP
// consecutive ranks by the stage's chain, and checks the result against
// the parts added in the chain's order.
func chainSumMain(g *jaccl.Group) error {
	tpn, _ := strconv.Atoi(os.Getenv("MODEL_TEST_TP"))
	rows, _ := strconv.Atoi(os.Getenv("MODEL_TEST_ROWS"))
	const width = 1024
	x, err := mlx.FromSlice(chainPart(g.Rank(), rows*width), 1, rows, width)
	if err != nil {
		return err
	}
	defer x.Free()
	c := &chain{world: g.MLX(), stream: g.Stream(), rank: g.Rank(), pos: g.Rank() % tpn, k: tpn}
	var got []float32
	err = mlx.Do(func() error {
		s := &scope{}
		defer s.release()
		y := c.sum(s, x)
		s.eval(y)
		if s.err != nil {
			return s.err
		}
		got, err = mlx.ToSlice[float32](y)
		return err
	})
	if err != nil {
		return err
	}
	first := g.Rank() / tpn * tpn
	want := chainPart(first, rows*width)
	for r := first + 1; r < first+tpn; r++ {
		for i, v := range chainPart(r, rows*width) {
			want[i] += v
		}
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("rank %d: element %d of the stage's sum is %g, want %g", g.Rank(), i, got[i], want[i])
		}
	}
	return nil
}
