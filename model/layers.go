package model

import (
	"fmt"
	"math"
	"slices"

	"github.com/mlxdist/mlxdist/mlx"
)

// linear is a Linear, Embedding, SwitchLinear or MultiLinear layer's
// arrays on this rank: a float weight, or a packed one with its scales and
// biases and the quantization it was packed with.
type linear struct {
	w, scales, biases *mlx.Array
	bias              *mlx.Array // nil: none
	q                 *mlx.Quantization
}

// apply is the layer on x: x @ Wᵀ (+ bias), as nn.Linear and
// nn.QuantizedLinear compute it.
func (s *scope) linear(l *linear, x *mlx.Array) *mlx.Array {
	if l.q != nil {
		y := s.quantizedMatmul(x, l.w, l.scales, l.biases, true, *l.q)
		if l.bias != nil {
			y = s.add(y, l.bias)
		}
		return y
	}
	if l.bias != nil {
		return s.addmm(l.bias, x, s.transpose(l.w))
	}
	return s.matmul(x, s.transpose(l.w))
}

// linearToAll is a sharded-to-all layer: this rank's part of x @ Wᵀ,
// summed over the group, then the bias, once (mlx's ShardedToAllLinear).
func (s *scope) linearToAll(l *linear, x *mlx.Array, t *tp) *mlx.Array {
	var y *mlx.Array
	if l.q != nil {
		y = s.quantizedMatmul(x, l.w, l.scales, l.biases, true, *l.q)
	} else {
		y = s.matmul(x, s.transpose(l.w))
	}
	y = t.allSum(s, y)
	if l.bias != nil {
		y = s.add(y, l.bias)
	}
	return y
}

// multiLinear is mlx-lm's MultiLinear, one matrix per head:
// x @ Wᵀ when transpose, else x @ W.
func (s *scope) multiLinear(l *linear, x *mlx.Array, transpose bool) *mlx.Array {
	if l.q != nil {
		return s.quantizedMatmul(x, l.w, l.scales, l.biases, transpose, *l.q)
	}
	if transpose {
		return s.matmul(x, s.swapaxes(l.w, -1, -2))
	}
	return s.matmul(x, l.w)
}

// embed looks the ids up in an Embedding.
func (s *scope) embed(l *linear, ids *mlx.Array) *mlx.Array {
	if l.q != nil {
		return s.dequantize(s.take(l.w, ids, 0), s.take(l.scales, ids, 0), s.take(l.biases, ids, 0), *l.q)
	}
	return s.take(l.w, ids, 0)
}

// asLinear is Embedding.as_linear, the tied output head.
func (s *scope) asLinear(l *linear, x *mlx.Array) *mlx.Array {
	if l.q != nil {
		return s.quantizedMatmul(x, l.w, l.scales, l.biases, true, *l.q)
	}
	return s.matmul(x, s.transpose(l.w))
}

// tp is this rank's place in a tensor-parallel group; nil is one rank.
type tp struct {
	g      *mlx.Group
	stream *mlx.Stream
	n      int
	// chain, when set, sums over a pipeline stage's n ranks by neighbour
	// exchanges in the whole group, g being nil (see stage.go).
	chain *chain
	// pp is the rank's pipeline stage; nil runs every layer.
	pp *pipe
}

// allSum sums x over the group; with one rank it is x.
func (t *tp) allSum(s *scope, x *mlx.Array) *mlx.Array {
	switch {
	case t == nil || t.n <= 1:
		return x
	case t.chain != nil:
		return t.chain.sum(s, x)
	}
	return s.allSum(x, t.g, t.stream)
}

func (t *tp) size() int {
	if t == nil {
		return 1
	}
	return t.n
}

// binder takes a rank's arrays by name and checks them against the model's
// shapes. It records the first problem; every name it hands out is marked,
// so that arrays no layer uses can be reported.
type binder struct {
	cfg    *Config
	arrays map[string]*mlx.Array
	used   map[string]bool
	err    error
	// skip, when set, names the tensors another pipeline stage holds:
	// they are bound to nothing.
	skip func(name string) bool
}

func (b *binder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf("model: "+format, args...)
	}
}

func (b *binder) optional(name string) *mlx.Array {
	if b.skip != nil && b.skip(name) {
		return nil
	}
	a, ok := b.arrays[name]
	if ok {
		b.used[name] = true
	}
	return a
}

// array returns the named array, which must have the given shape (a -1
// matches any size).
func (b *binder) array(name string, shape ...int) *mlx.Array {
	a := b.optional(name)
	if a == nil {
		if b.skip != nil && b.skip(name) {
			return nil
		}
		b.fail("checkpoint has no tensor %q for this rank: is it a %s checkpoint, loaded with the model's rules?", name, b.cfg.ModelType)
		return nil
	}
	b.checkShape(name, a, shape)
	return a
}

func (b *binder) checkShape(name string, a *mlx.Array, shape []int) {
	got := a.Shape()
	ok := len(got) == len(shape)
	for i := 0; ok && i < len(shape); i++ {
		ok = shape[i] < 0 || shape[i] == got[i]
	}
	if !ok {
		b.fail("tensor %q has shape %v on this rank, want %v", name, got, shape)
	}
}

// linear binds module's weight (and scales, biases, bias) for a layer
// whose last-axis input is in wide on this rank and whose leading axes are
// lead (the output rows, or experts/heads then output rows). The
// quantization is config.json's for the module; where the module has no
// entry it is read from the shapes, as mlx-lm does.
func (b *binder) linear(module string, in int, lead ...int) *linear {
	l := &linear{}
	if b.skip != nil && b.skip(module+".weight") {
		return l
	}
	l.bias = b.optional(module + ".bias")
	scales := b.optional(module + ".scales")
	if scales == nil {
		if q, explicit := b.cfg.moduleQuant(b.cfg.Prefix + module); explicit && q != nil {
			b.fail("config.json quantizes %q (%d bits, group size %d) but the checkpoint has no %s.scales", module, q.Bits, q.GroupSize, module)
		}
		l.w = b.array(module+".weight", append(slices.Clone(lead), in)...)
		return l
	}
	l.w = b.array(module+".weight", append(slices.Clone(lead), -1)...)
	l.scales = scales
	l.biases = b.array(module+".biases", scales.Shape()...)
	if l.w == nil {
		return l
	}
	ws, ss := l.w.Shape(), scales.Shape()
	groups, packed := ss[len(ss)-1], ws[len(ws)-1]
	q, explicit := b.cfg.moduleQuant(b.cfg.Prefix + module)
	if !explicit || q == nil {
		if groups == 0 || in%groups != 0 || (packed*32)%in != 0 {
			b.fail("quantized %q: weight %v and scales %v do not fit an input of %d", module, ws, ss, in)
			return l
		}
		q = &mlx.Quantization{GroupSize: in / groups, Bits: packed * 32 / in}
	}
	if q.GroupSize*groups != in || q.Bits*in != packed*32 {
		b.fail("quantized %q: weight %v and scales %v do not hold %d-bit groups of %d over an input of %d", module, ws, ss, q.Bits, q.GroupSize, in)
	}
	b.checkShape(module+".scales", scales, append(slices.Clone(lead), in/max(q.GroupSize, 1)))
	l.q = q
	return l
}

// norm binds an RMSNorm weight of width n.
func (b *binder) norm(name string, n int) *mlx.Array { return b.array(name+".weight", n) }

// rope is one of mlx-lm's rotary embeddings: nn.RoPE with a base and a
// scale, or fast.rope with precomputed frequencies (llama3, YaRN), and
// YaRN's input scale.
type rope struct {
	dims        int
	traditional bool
	base, scale float64
	freqs       *mlx.Array // nil: from base
	mscale      float64    // YaRN scales the input by this when ≠ 1
}

func (s *scope) rope(r *rope, x *mlx.Array, offset int) *mlx.Array {
	if r.mscale != 1 && r.mscale != 0 {
		x = s.mul(x, s.like(r.mscale, x))
	}
	return s.do(func() (*mlx.Array, error) {
		return mlx.RoPE(x, r.dims, r.traditional, float32(r.base), float32(r.scale), offset, r.freqs)
	})
}

// newRope is mlx-lm's initialize_rope: the frequencies of llama3 and YaRN
// scaling are computed with the same MLX ops in the same order, so they
// are the same float32 values.
func newRope(s *scope, dims int, base float64, traditional bool, scaling map[string]any, maxPos int) (*rope, error) {
	kind := "default"
	if scaling != nil {
		if t, ok := scaling["type"].(string); ok {
			kind = t
		} else if t, ok := scaling["rope_type"].(string); ok {
			kind = t
		}
	}
	num := func(key string, def float64) float64 {
		if v, ok := scaling[key].(float64); ok {
			return v
		}
		return def
	}
	r := &rope{dims: dims, traditional: traditional, base: base, scale: 1, mscale: 1}
	switch kind {
	case "default":
	case "linear":
		r.scale = 1 / num("factor", 1)
	case "llama3":
		factor := num("factor", 1)
		lowFF, highFF := num("low_freq_factor", 1), num("high_freq_factor", 4)
		old := num("original_max_position_embeddings", 8192)
		lowWL, highWL := old/lowFF, old/highFF
		freqs := s.pow(s.f32(base), s.div(s.do(func() (*mlx.Array, error) {
			return mlx.Arange(0, float64(dims), 2, mlx.Int32)
		}), s.i32(dims)))
		wavelens := s.mul(s.f32(2*math.Pi), freqs)
		freqs = s.where(s.greater(wavelens, s.f32(lowWL)), s.mul(freqs, s.f32(factor)), freqs)
		medium := s.and(s.greater(wavelens, s.f32(highWL)), s.less(wavelens, s.f32(lowWL)))
		smooth := s.div(s.sub(s.div(s.f32(old), wavelens), s.f32(lowFF)), s.f32(highFF-lowFF))
		smoothFreqs := s.div(freqs, s.add(s.div(s.sub(s.f32(1), smooth), s.f32(factor)), smooth))
		r.freqs = s.where(medium, smoothFreqs, freqs)
	case "yarn", "deepseek_yarn":
		factor := num("factor", 1)
		old := num("original_max_position_embeddings", 4096)
		betaFast, betaSlow := num("beta_fast", 32), num("beta_slow", 1)
		mscale, mscaleAll := num("mscale", 1), num("mscale_all_dim", 0)
		corr := func(rot float64) float64 {
			return float64(dims) * math.Log(old/(rot*2*math.Pi)) / (2 * math.Log(base))
		}
		low := max(math.Floor(corr(betaFast)), 0)
		high := min(math.Ceil(corr(betaSlow)), float64(dims-1))
		getM := func(scale, m float64) float64 {
			if scale <= 1 {
				return 1
			}
			return 0.1*m*math.Log(scale) + 1
		}
		r.mscale = getM(factor, mscale) / getM(factor, mscaleAll)
		extra := s.pow(s.f32(base), s.div(s.do(func() (*mlx.Array, error) {
			return mlx.Arange(0, float64(dims), 2, mlx.Float32)
		}), s.f32(float64(dims))))
		inter := s.mul(s.f32(factor), extra)
		if low == high {
			high += 0.001
		}
		ramp := s.div(s.sub(s.do(func() (*mlx.Array, error) {
			return mlx.Arange(0, float64(dims/2), 1, mlx.Float32)
		}), s.f32(low)), s.f32(high-low))
		mask := s.sub(s.f32(1), s.clip(ramp, s.f32(0), s.f32(1)))
		r.freqs = s.div(s.mul(inter, extra), s.add(s.mul(inter, mask), s.mul(extra, s.sub(s.f32(1), mask))))
	default:
		return nil, fmt.Errorf("model: rope_scaling type %q is not supported: want default, linear, llama3 or yarn", kind)
	}
	return r, s.err
}
