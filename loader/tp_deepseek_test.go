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

// The widths of the DeepSeek-V3 layer the tensor-parallel test computes.
const (
	dsHidden, dsHeads, dsQLoRA, dsKVLoRA = 32, 4, 32, 16
	dsNope, dsRope, dsV                  = 8, 4, 8
	dsExperts, dsInter, dsShared         = 4, 16, 16
	dsTokens                             = 4
)

// dsExpertsOf is the fixed routing of the test: token t goes to experts
// t and t+1 (mod 4) with weights 0.75 and 0.25. Every rank computes the
// same routing in mlx-lm, so the router itself is not what sharding puts
// at risk.
func dsExpertsOf(t int) [2]struct {
	e int
	w float32
} {
	return [2]struct {
		e int
		w float32
	}{{t % dsExperts, 0.75}, {(t + 1) % dsExperts, 0.25}}
}

// tpDeepSeekCheckpoint writes one float32 DeepSeek-V3 layer as mlx-lm
// converts it: q_b_proj, the per-head embed_q and unembed_out, o_proj,
// the stacked switch_mlp experts and the shared experts.
func tpDeepSeekCheckpoint(t *testing.T) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(13, 14))
	var tensors []safetensors.TensorData
	add := func(name string, shape ...int64) {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		b := make([]byte, 0, 4*n)
		for range n {
			b = append(b, f32le(float32(rng.NormFloat64()*0.2))...)
		}
		tensors = append(tensors, safetensors.TensorData{Name: "model.layers.0." + name, Dtype: safetensors.F32, Shape: shape, Data: b})
	}
	add("self_attn.q_b_proj.weight", dsHeads*(dsNope+dsRope), dsQLoRA)
	add("self_attn.embed_q.weight", dsHeads, dsKVLoRA, dsNope)
	add("self_attn.unembed_out.weight", dsHeads, dsV, dsKVLoRA)
	add("self_attn.o_proj.weight", dsHidden, dsHeads*dsV)
	add("mlp.switch_mlp.gate_proj.weight", dsExperts, dsInter, dsHidden)
	add("mlp.switch_mlp.up_proj.weight", dsExperts, dsInter, dsHidden)
	add("mlp.switch_mlp.down_proj.weight", dsExperts, dsHidden, dsInter)
	add("mlp.shared_experts.gate_proj.weight", dsShared, dsHidden)
	add("mlp.shared_experts.up_proj.weight", dsShared, dsHidden)
	add("mlp.shared_experts.down_proj.weight", dsHidden, dsShared)
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.TensorData{tensors}, nil))
	return dir
}

func f32le(v float32) []byte {
	u := math.Float32bits(v)
	return []byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)}
}

// calc chains MLX ops, keeps every intermediate for one FreeAll, and
// remembers the first error; after an error every op gets nil inputs,
// which MLX's binding rejects, so the chain stops doing work.
type calc struct {
	arrays []*mlx.Array
	err    error
}

func (c *calc) do(a *mlx.Array, err error) *mlx.Array {
	if err != nil {
		if c.err == nil {
			c.err = err
		}
		return nil
	}
	c.arrays = append(c.arrays, a)
	return a
}

func (c *calc) free() { mlx.FreeAll(c.arrays...) }

// wt is w's last two axes swapped.
func (c *calc) wt(w *mlx.Array) *mlx.Array {
	if w == nil {
		return nil
	}
	axes := make([]int, w.Ndim())
	for i := range axes {
		axes[i] = i
	}
	n := len(axes)
	axes[n-1], axes[n-2] = axes[n-2], axes[n-1]
	return c.do(mlx.Transpose(w, axes...))
}

// allSum sums y over g's ranks, when there are several.
func (c *calc) allSum(y *mlx.Array, g *mlx.Group) *mlx.Array {
	if g == nil || g.Size() == 1 {
		return y
	}
	return c.do(mlx.AllSum(y, g, mlx.CPUStream()))
}

// dsAttention is the linear path of mlx-lm's absorbed MLA decode through
// the tensors tensor parallelism splits: q = qa·q_bᵀ split into heads of
// nope + rope, the latent query q_nope·embed_qᵀ per head, back out through
// unembed_outᵀ per head, plus each head's summed rope part, heads
// flattened, o_proj, all-sum. A rank holds H/N heads of each.
func dsAttention(c *calc, w map[string]*mlx.Array, qa *mlx.Array, g *mlx.Group) *mlx.Array {
	p := "model.layers.0.self_attn."
	heads := w[p+"embed_q.weight"].Shape()[0]
	q := c.do(mlx.Matmul(qa, c.wt(w[p+"q_b_proj.weight"])))
	q = c.do(mlx.Reshape(q, dsTokens, heads, dsNope+dsRope))
	q = c.do(mlx.Transpose(q, 1, 0, 2))
	qNope := c.do(mlx.Slice(q, []int{0, 0, 0}, []int{heads, dsTokens, dsNope}, nil))
	qPE := c.do(mlx.Slice(q, []int{0, 0, dsNope}, []int{heads, dsTokens, dsNope + dsRope}, nil))
	latent := c.do(mlx.Matmul(qNope, c.wt(w[p+"embed_q.weight"])))
	o := c.do(mlx.Matmul(latent, c.wt(w[p+"unembed_out.weight"])))
	o = c.do(mlx.Add(o, c.do(mlx.Sum(qPE, true, 2))))
	o = c.do(mlx.Transpose(o, 1, 0, 2))
	o = c.do(mlx.Reshape(o, dsTokens, heads*dsV))
	return c.allSum(c.do(mlx.Matmul(o, c.wt(w[p+"o_proj.weight"]))), g)
}

// dsMoE is the MoE block as tensor parallelism splits it: each token
// through its two routed experts (gate·up product, then down, weighted)
// plus the shared experts, one all-sum over both. A rank holds every
// expert at 1/N of the intermediate size.
func dsMoE(c *calc, w map[string]*mlx.Array, x *mlx.Array, g *mlx.Group) *mlx.Array {
	p := "model.layers.0.mlp."
	mlp := func(x, gate, up, down *mlx.Array) *mlx.Array {
		h := c.do(mlx.Multiply(c.do(mlx.Matmul(x, c.wt(gate))), c.do(mlx.Matmul(x, c.wt(up)))))
		return c.do(mlx.Matmul(h, c.wt(down)))
	}
	expert := func(name string, e int) *mlx.Array {
		a := w[p+"switch_mlp."+name+".weight"]
		s := a.Shape()
		return c.do(mlx.Reshape(c.do(mlx.Slice(a, []int{e, 0, 0}, []int{e + 1, s[1], s[2]}, nil)), s[1], s[2]))
	}
	rows := make([]*mlx.Array, dsTokens)
	for t := range dsTokens {
		xt := c.do(mlx.Slice(x, []int{t, 0}, []int{t + 1, dsHidden}, nil))
		var acc *mlx.Array
		for _, r := range dsExpertsOf(t) {
			y := mlp(xt, expert("gate_proj", r.e), expert("up_proj", r.e), expert("down_proj", r.e))
			y = c.do(mlx.Multiply(y, c.do(mlx.Scalar(r.w))))
			if acc == nil {
				acc = y
			} else {
				acc = c.do(mlx.Add(acc, y))
			}
		}
		rows[t] = acc
	}
	if c.err != nil {
		return nil
	}
	routed := c.do(mlx.Concatenate(rows, 0))
	shared := mlp(x, w[p+"shared_experts.gate_proj.weight"], w[p+"shared_experts.up_proj.weight"], w[p+"shared_experts.down_proj.weight"])
	return c.allSum(c.do(mlx.Add(routed, shared)), g)
}

// tpDeepSeekRank loads its shard and the whole layer with the DeepSeek-V3
// rules and checks that the sharded attention and MoE, all-summed, equal
// the unsharded ones.
func tpDeepSeekRank(dir string) error {
	g, err := mlx.DistributedInit(true, "ring")
	if err != nil {
		return err
	}
	load := func(rank, n int) (map[string]*mlx.Array, error) {
		guard, err := newTestGuard()
		if err != nil {
			return nil, err
		}
		l, err := Open(dir, Options{Guard: guard, PlanOptions: PlanOptions{Rank: rank, WorldSize: n, Rules: DeepSeekV3Rules(dsHeads)}})
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
	input := func(n, width int, phase float64) []float32 {
		v := make([]float32, n*width)
		for i := range v {
			v[i] = float32(math.Sin(float64(i)*0.37 + phase))
		}
		return v
	}
	var c calc
	defer c.free()
	qa := c.do(mlx.FromSlice(input(dsTokens, dsQLoRA, 0), dsTokens, dsQLoRA))
	x := c.do(mlx.FromSlice(input(dsTokens, dsHidden, 1), dsTokens, dsHidden))
	blocks := []struct {
		name string
		run  func(w map[string]*mlx.Array, g *mlx.Group) *mlx.Array
	}{
		{"attention q_b_proj/embed_q/unembed_out/o_proj", func(w map[string]*mlx.Array, g *mlx.Group) *mlx.Array { return dsAttention(&c, w, qa, g) }},
		{"moe switch_mlp+shared_experts", func(w map[string]*mlx.Array, g *mlx.Group) *mlx.Array { return dsMoE(&c, w, x, g) }},
	}
	for _, b := range blocks {
		gotA, wantA := b.run(shard, g), b.run(full, nil)
		if c.err != nil {
			return fmt.Errorf("%s: %w", b.name, c.err)
		}
		got, err := mlx.ToSlice[float32](gotA)
		if err != nil {
			return err
		}
		want, err := mlx.ToSlice[float32](wantA)
		if err != nil {
			return err
		}
		var diff, scale float64
		for i := range want {
			diff = max(diff, math.Abs(float64(got[i]-want[i])))
			scale = max(scale, math.Abs(float64(want[i])))
		}
		if diff > 1e-4*max(scale, 1) {
			return fmt.Errorf("%s: max |sharded − unsharded| = %g (scale %g)", b.name, diff, scale)
		}
		fmt.Printf("rank %d/%d %s ok: max diff %.3g of %.3g\n", g.Rank(), g.Size(), b.name, diff, scale)
	}
	return nil
}

func TestTwoRanksOverRingComputeDeepSeekAttentionAndMoEAsOneRankUnsharded(t *testing.T) {
	requireMLX(t)
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		unavailable(t, "MLX has no ring back-end: %v", err)
	}
	dir := tpDeepSeekCheckpoint(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]}, N: 2,
		Env:    []string{"LOADER_TEST_HELPER=tp-deepseek", "LOADER_TEST_DIR=" + dir},
		Stdout: &out, Stderr: &out, Grace: 2 * time.Second,
	})
	require.NoError(t, err, out.String())
	for _, r := range []string{"[0] rank 0/2", "[1] rank 1/2"} {
		assert.Equal(t, 2, strings.Count(out.String(), r), out.String())
	}
	t.Log(out.String())
}
