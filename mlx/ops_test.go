package mlx_test

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

// opCase is one op computed from Go and, on the same inputs, by Python MLX.
type opCase struct {
	name string
	py   string // an expression over the inputs, with mx in scope
	goFn func(in map[string]*mlx.Array) (*mlx.Array, error)
}

func f32(v float32) *mlx.Array {
	a, err := mlx.Scalar(v)
	if err != nil {
		panic(err)
	}
	return a
}

// opCases covers every op of the binding with the argument shapes the
// models use: element-wise, reductions, sorting, indexing, the fast
// kernels, the gathered matmuls and the random ops with explicit keys.
var opCases = []opCase{
	{"sigmoid", "mx.sigmoid(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Sigmoid(in["a"]) }},
	{"exp", "mx.exp(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Exp(in["a"]) }},
	{"log", "mx.log(p)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Log(in["p"]) }},
	{"negative", "mx.negative(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Negative(in["a"]) }},
	{"sqrt", "mx.sqrt(p)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Sqrt(in["p"]) }},
	{"rsqrt", "mx.rsqrt(p)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Rsqrt(in["p"]) }},
	{"square", "mx.square(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Square(in["a"]) }},
	{"abs", "mx.abs(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Abs(in["a"]) }},
	{"tanh", "mx.tanh(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Tanh(in["a"]) }},
	{"sin", "mx.sin(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Sin(in["a"]) }},
	{"cos", "mx.cos(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Cos(in["a"]) }},
	{"erf", "mx.erf(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Erf(in["a"]) }},
	{"floor", "mx.floor(a * 3)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		x, err := mlx.Multiply(in["a"], f32(3))
		if err != nil {
			return nil, err
		}
		return mlx.Floor(x)
	}},
	{"ceil", "mx.ceil(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Ceil(in["a"]) }},
	{"logical_not", "mx.logical_not(mx.greater(a, b))", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		g, err := mlx.Greater(in["a"], in["b"])
		if err != nil {
			return nil, err
		}
		return mlx.LogicalNot(g)
	}},
	{"copy", "mx.array(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Copy(in["a"]) }},
	{"subtract", "a - b", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Subtract(in["a"], in["b"]) }},
	{"divide", "a / p", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Divide(in["a"], in["p"]) }},
	{"floor_divide", "mx.floor_divide(ia, ib)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.FloorDivide(in["ia"], in["ib"])
	}},
	{"remainder", "mx.remainder(ia, ib)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Remainder(in["ia"], in["ib"])
	}},
	{"power", "mx.power(p, b)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Power(in["p"], in["b"]) }},
	{"maximum", "mx.maximum(a, b)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Maximum(in["a"], in["b"]) }},
	{"minimum", "mx.minimum(a, b)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Minimum(in["a"], in["b"]) }},
	{"equal", "mx.equal(ia, ib)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Equal(in["ia"], in["ib"]) }},
	{"not_equal", "mx.not_equal(ia, ib)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.NotEqual(in["ia"], in["ib"]) }},
	{"greater_equal", "a >= b", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.GreaterEqual(in["a"], in["b"]) }},
	{"less", "a < b", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Less(in["a"], in["b"]) }},
	{"less_equal", "a <= b", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.LessEqual(in["a"], in["b"]) }},
	{"logical_and_or", "mx.logical_or(mx.logical_and(a > 0, b > 0), a > 1)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		ap, err := mlx.Greater(in["a"], f32(0))
		if err != nil {
			return nil, err
		}
		bp, err := mlx.Greater(in["b"], f32(0))
		if err != nil {
			return nil, err
		}
		and, err := mlx.LogicalAnd(ap, bp)
		if err != nil {
			return nil, err
		}
		a1, err := mlx.Greater(in["a"], f32(1))
		if err != nil {
			return nil, err
		}
		return mlx.LogicalOr(and, a1)
	}},
	{"where", "mx.where(a > b, a, b * 2)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		c, err := mlx.Greater(in["a"], in["b"])
		if err != nil {
			return nil, err
		}
		b2, err := mlx.Multiply(in["b"], f32(2))
		if err != nil {
			return nil, err
		}
		return mlx.Where(c, in["a"], b2)
	}},
	{"clip", "mx.clip(a, -0.5, 0.5)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Clip(in["a"], f32(-0.5), f32(0.5))
	}},
	{"clip_upper_only", "mx.clip(a, None, 0.25)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Clip(in["a"], nil, f32(0.25))
	}},
	{"addmm", "mx.addmm(c[:, :1], a, b.T, alpha=0.5, beta=2.0)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		bt, err := mlx.Transpose(in["b"])
		if err != nil {
			return nil, err
		}
		c, err := mlx.Slice(in["c"], []int{0, 0}, []int{3, 1}, nil)
		if err != nil {
			return nil, err
		}
		return mlx.Addmm(c, in["a"], bt, 0.5, 2)
	}},
	{"mean", "mx.mean(a, axis=1, keepdims=True)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Mean(in["a"], true, 1) }},
	{"max_all", "mx.max(a)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Max(in["a"], false) }},
	{"min", "mx.min(a, axis=0)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Min(in["a"], false, 0) }},
	{"logsumexp", "mx.logsumexp(a, axis=-1, keepdims=True)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Logsumexp(in["a"], true, -1)
	}},
	{"softmax", "mx.softmax(a, axis=-1, precise=True)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Softmax(in["a"], true, -1)
	}},
	{"argmax", "mx.argmax(a, axis=1)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Argmax(in["a"], 1, false) }},
	{"argmin", "mx.argmin(a, axis=0, keepdims=True)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Argmin(in["a"], 0, true) }},
	{"cumsum", "mx.cumsum(a, axis=1, reverse=True, inclusive=False)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Cumsum(in["a"], 1, true, false)
	}},
	{"argpartition", "mx.argpartition(-a, kth=1, axis=-1)[..., :2]", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		n, err := mlx.Negative(in["a"])
		if err != nil {
			return nil, err
		}
		p, err := mlx.Argpartition(n, 1, -1)
		if err != nil {
			return nil, err
		}
		return mlx.Slice(p, []int{0, 0}, []int{3, 2}, nil)
	}},
	{"argsort", "mx.argsort(a, axis=0)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Argsort(in["a"], 0) }},
	{"sort", "mx.sort(a, axis=-1)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Sort(in["a"], -1) }},
	{"topk", "mx.sort(mx.topk(a, 2, axis=-1), axis=-1)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		k, err := mlx.Topk(in["a"], 2, -1)
		if err != nil {
			return nil, err
		}
		return mlx.Sort(k, -1)
	}},
	{"take_along_axis", "mx.take_along_axis(a, idx, axis=1)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.TakeAlongAxis(in["a"], in["idx"], 1)
	}},
	{"put_along_axis", "mx.put_along_axis(a, idx, b[:, :2], axis=1)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		v, err := mlx.Slice(in["b"], []int{0, 0}, []int{3, 2}, nil)
		if err != nil {
			return nil, err
		}
		return mlx.PutAlongAxis(in["a"], in["idx"], v, 1)
	}},
	{"scatter_add_axis", "a.at[mx.arange(3)[:, None], dup].add(b[:, :2])", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		v, err := mlx.Slice(in["b"], []int{0, 0}, []int{3, 2}, nil)
		if err != nil {
			return nil, err
		}
		return mlx.ScatterAddAxis(in["a"], in["dup"], v, 1)
	}},
	{"slice_update", "_su(a, b)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		u, err := mlx.Slice(in["b"], []int{0, 0}, []int{2, 2}, nil)
		if err != nil {
			return nil, err
		}
		return mlx.SliceUpdate(in["a"], u, []int{1, 1}, []int{3, 3}, nil)
	}},
	{"expand_squeeze", "mx.squeeze(mx.expand_dims(a, (0, 2)), 0)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		e, err := mlx.ExpandDims(in["a"], 0, 2)
		if err != nil {
			return nil, err
		}
		return mlx.Squeeze(e, 0)
	}},
	{"broadcast_to", "mx.broadcast_to(a[:1], (5, 4))", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		r, err := mlx.Slice(in["a"], []int{0, 0}, []int{1, 4}, nil)
		if err != nil {
			return nil, err
		}
		return mlx.BroadcastTo(r, 5, 4)
	}},
	{"swapaxes", "mx.swapaxes(q, 1, 2)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Swapaxes(in["q"], 1, 2) }},
	{"stack", "mx.stack([a, b], axis=1)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Stack([]*mlx.Array{in["a"], in["b"]}, 1)
	}},
	{"flatten", "mx.flatten(q, 1, 2)", func(in map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Flatten(in["q"], 1, 2) }},
	{"arange", "mx.arange(3, 17, 2, dtype=mx.int32)", func(map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Arange(3, 17, 2, mlx.Int32)
	}},
	{"arange_float", "mx.arange(0.5, 2.0, 0.25, dtype=mx.float32)", func(map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Arange(0.5, 2, 0.25, mlx.Float32)
	}},
	{"full", "mx.full((2, 3), 7.5, dtype=mx.float32)", func(map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.Full([]int{2, 3}, f32(7.5), mlx.Float32)
	}},
	{"ones", "mx.ones((2, 2), dtype=mx.int32)", func(map[string]*mlx.Array) (*mlx.Array, error) { return mlx.Ones([]int{2, 2}, mlx.Int32) }},
	{"gather_mm", "mx.gather_mm(x, w.swapaxes(-1, -2), None, experts, sorted_indices=False)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		wt, err := mlx.Swapaxes(in["w"], -1, -2)
		if err != nil {
			return nil, err
		}
		return mlx.GatherMM(in["x"], wt, nil, in["experts"], false)
	}},
	{"gather_qmm", "_gqmm(x, w, experts)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		q := mlx.Quantization{GroupSize: 32, Bits: 4}
		wq, s, b, err := mlx.Quantize(in["w"], q)
		if err != nil {
			return nil, err
		}
		return mlx.GatherQMM(in["x"], wq, s, b, nil, in["experts"], true, q, true)
	}},
	{"rms_norm", "mx.fast.rms_norm(a, c[0], 1e-6)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		w, err := mlx.Slice(in["c"], []int{0, 0}, []int{1, 4}, nil)
		if err != nil {
			return nil, err
		}
		w, err = mlx.Reshape(w, 4)
		if err != nil {
			return nil, err
		}
		return mlx.RMSNorm(in["a"], w, 1e-6)
	}},
	{"rms_norm_no_weight", "mx.fast.rms_norm(a, None, 1e-5)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.RMSNorm(in["a"], nil, 1e-5)
	}},
	{"layer_norm", "mx.fast.layer_norm(a, c[0], c[1], 1e-5)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		rows, err := mlx.Split(in["c"], 3, 0)
		if err != nil {
			return nil, err
		}
		w, _ := mlx.Reshape(rows[0], 4)
		b, _ := mlx.Reshape(rows[1], 4)
		return mlx.LayerNorm(in["a"], w, b, 1e-5)
	}},
	{"rope", "mx.fast.rope(q, 8, traditional=False, base=10000.0, scale=1.0, offset=3)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.RoPE(in["q"], 8, false, 10000, 1, 3, nil)
	}},
	{"rope_freqs", "mx.fast.rope(q, 8, traditional=True, base=None, scale=0.5, offset=1, freqs=freqs)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.RoPE(in["q"], 8, true, 0, 0.5, 1, in["freqs"])
	}},
	{"sdpa", "mx.fast.scaled_dot_product_attention(q, k, v, scale=0.35)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.ScaledDotProductAttention(in["q"], in["k"], in["v"], 0.35, "", nil)
	}},
	{"sdpa_causal", "mx.fast.scaled_dot_product_attention(q, k, v, scale=0.35, mask='causal')", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.ScaledDotProductAttention(in["q"], in["k"], in["v"], 0.35, "causal", nil)
	}},
	{"sdpa_additive", "mx.fast.scaled_dot_product_attention(q, k, v, scale=0.35, mask=mask)", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		return mlx.ScaledDotProductAttention(in["q"], in["k"], in["v"], 0.35, "", in["mask"])
	}},
	{"random_categorical", "mx.random.categorical(a, axis=-1, key=mx.random.key(7))", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		k, err := mlx.RandomKey(7)
		if err != nil {
			return nil, err
		}
		return mlx.RandomCategorical(in["a"], -1, k)
	}},
	{"random_split_uniform", "mx.random.uniform(-1.0, 1.0, (3, 5), key=mx.random.split(mx.random.key(11), 3)[2])", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		k, err := mlx.RandomKey(11)
		if err != nil {
			return nil, err
		}
		ks, err := mlx.RandomSplit(k, 3)
		if err != nil {
			return nil, err
		}
		k2, err := mlx.Slice(ks, []int{2, 0}, []int{3, 2}, nil)
		if err != nil {
			return nil, err
		}
		k2, err = mlx.Reshape(k2, 2)
		if err != nil {
			return nil, err
		}
		return mlx.RandomUniform(f32(-1), f32(1), []int{3, 5}, mlx.Float32, k2)
	}},
	{"random_gumbel", "mx.random.gumbel((4,), key=mx.random.key(3))", func(in map[string]*mlx.Array) (*mlx.Array, error) {
		k, err := mlx.RandomKey(3)
		if err != nil {
			return nil, err
		}
		return mlx.RandomGumbel([]int{4}, mlx.Float32, k)
	}},
}

const opsScript = `
import sys
import mlx.core as mx
inputs = mx.load(sys.argv[1])
globals().update(inputs)
def _su(a, b):
    out = mx.array(a)
    out[1:3, 1:3] = b[:2, :2]
    return out
def _gqmm(x, w, experts):
    wq, s, bi = mx.quantize(w, group_size=32, bits=4)
    return mx.gather_qmm(x, wq, s, bi, rhs_indices=experts, transpose=True, group_size=32, bits=4, sorted_indices=True)
out = {}
for line in sys.stdin.read().splitlines():
    name, expr = line.split("\t", 1)
    out[name] = eval(expr)
mx.save_safetensors(sys.argv[2], out)
`

func TestEveryOpMatchesPythonMLXOnTheSameInputs(t *testing.T) {
	requireMLX(t)
	dir := t.TempDir()
	in := map[string]*mlx.Array{
		"a": arr(t, randFloats(1, 12), 3, 4),
		"b": arr(t, randFloats(2, 12), 3, 4),
		"c": arr(t, randFloats(3, 12), 3, 4),
		"q": arr(t, randFloats(4, 2*4*5*8), 2, 4, 5, 8),
		"k": arr(t, randFloats(5, 2*2*7*8), 2, 2, 7, 8),
		"v": arr(t, randFloats(6, 2*2*7*8), 2, 2, 7, 8),
		"x": arr(t, randFloats(7, 6*1*64), 6, 1, 64),
		"w": arr(t, randFloats(8, 4*16*64), 4, 16, 64),
	}
	pos := randFloats(9, 12)
	for i := range pos {
		pos[i] = pos[i]*pos[i] + 0.1
	}
	in["p"] = arr(t, pos, 3, 4)
	freqs := make([]float32, 4)
	for i := range freqs {
		freqs[i] = float32(i+1) * 0.37
	}
	in["freqs"] = arr(t, freqs, 4)
	mask := randFloats(10, 5*7)
	in["mask"] = arr(t, mask, 5, 7)
	mkInts := func(name string, v []int32, shape ...int) {
		a := ok(mlx.FromSlice(v, shape...))(t)
		t.Cleanup(a.Free)
		in[name] = a
	}
	mkInts("ia", []int32{7, -7, 9, 0, 13, -2}, 2, 3)
	mkInts("ib", []int32{2, 2, -4, 3, 5, 7}, 2, 3)
	mkInts("idx", []int32{3, 0, 1, 2, 2, 1}, 3, 2)
	// An index twice in a row, as a token repeated in a penalty's window.
	mkInts("dup", []int32{1, 1, 3, 0, 0, 0}, 3, 2)
	mkInts("experts", []int32{0, 0, 1, 2, 3, 3}, 6, 1)

	inPath := filepath.Join(dir, "in.safetensors")
	require.NoError(t, mlx.SaveSafetensors(inPath, in, nil))
	var script strings.Builder
	for _, c := range opCases {
		script.WriteString(c.name + "\t" + c.py + "\n")
	}
	outPath := filepath.Join(dir, "out.safetensors")
	testenv.RunPythonStdin(t, opsScript, script.String(), inPath, outPath)
	want, _, err := mlx.LoadSafetensors(outPath)
	require.NoError(t, err)
	var names []string
	for _, c := range opCases {
		names = append(names, c.name)
		t.Run(c.name, func(t *testing.T) {
			got, err := c.goFn(in)
			require.NoError(t, err)
			defer got.Free()
			w := want[c.name]
			require.NotNil(t, w, "python produced no %s", c.name)
			assert.Equal(t, w.Shape(), got.Shape(), "shape")
			assert.Equal(t, w.Dtype(), got.Dtype(), "dtype")
			gb := ok(got.Bytes())(t)
			wb := ok(w.Bytes())(t)
			assert.Equal(t, wb, gb, "the same op on the same inputs must give the same bits")
		})
	}
	sort.Strings(names)
	for i := 1; i < len(names); i++ {
		require.NotEqual(t, names[i-1], names[i], "case names must be unique")
	}
}

func TestOpsRejectBadArgumentsWithTheirName(t *testing.T) {
	requireMLX(t)
	a := arr(t, randFloats(1, 6), 2, 3)
	_, err := mlx.Where(a, a, nil)
	assert.ErrorIs(t, err, mlx.ErrFreed)
	_, err = mlx.ScaledDotProductAttention(a, a, a, 1, "causal", nil)
	var me *mlx.Error
	require.ErrorAs(t, err, &me, "2-D inputs are not attention inputs")
	assert.Equal(t, "mlx_fast_scaled_dot_product_attention", me.Op)
	_, err = mlx.RoPE(a, 3, false, 10000, 1, 0, nil)
	assert.Error(t, err, "odd rotary dims")
	_, err = mlx.Argpartition(a, 7, -1)
	assert.ErrorContains(t, err, "mlx_argpartition_axis")
	_, err = mlx.GatherQMM(a, a, nil, nil, nil, nil, true, mlx.Quantization{GroupSize: 64, Bits: 4}, false)
	assert.ErrorIs(t, err, mlx.ErrFreed)
}
