package model

import (
	"math"

	"github.com/mlxdist/mlxdist/mlx"
)

// A scope builds one step's graph: thousands of MLX calls, each of which
// can fail. It keeps the first error and turns every later call into a
// no-op returning nil (so model code reads like mlx-lm's, one op a line,
// with one check at the end), and it owns every array it made: release
// frees them all but the ones kept, deterministically, instead of leaving
// thousands of handles to the garbage collector. Freeing an intermediate
// of a graph that is still lazy is safe: MLX keeps what a kept array
// needs until it is evaluated.
//
// A scope is used inside one mlx.Do, on the MLX thread.
type scope struct {
	err   error
	temps []*mlx.Array
	// rider, when set, is a flag to carry in the first all-sum over its
	// group (see Generation's halt flag).
	rider *rider
}

// do records f's array, or its error.
func (s *scope) do(f func() (*mlx.Array, error)) *mlx.Array {
	if s.err != nil {
		return nil
	}
	a, err := f()
	if err != nil {
		s.err = err
		return nil
	}
	s.temps = append(s.temps, a)
	return a
}

// fail records err unless an earlier error is already recorded.
func (s *scope) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// release frees every array the scope made except keep, and forgets them.
func (s *scope) release(keep ...*mlx.Array) {
	kept := make(map[*mlx.Array]bool, len(keep))
	for _, k := range keep {
		kept[k] = true
	}
	for _, a := range s.temps {
		if !kept[a] {
			a.Free()
		}
	}
	clear(s.temps)
	s.temps = s.temps[:0]
}

func (s *scope) add(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Add(a, b) })
}

func (s *scope) sub(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Subtract(a, b) })
}

func (s *scope) mul(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Multiply(a, b) })
}

func (s *scope) div(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Divide(a, b) })
}

func (s *scope) floorDiv(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.FloorDivide(a, b) })
}

func (s *scope) pow(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Power(a, b) })
}

func (s *scope) greater(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Greater(a, b) })
}

func (s *scope) less(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Less(a, b) })
}

func (s *scope) greaterEqual(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.GreaterEqual(a, b) })
}

func (s *scope) and(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.LogicalAnd(a, b) })
}

func (s *scope) where(c, x, y *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Where(c, x, y) })
}

func (s *scope) clip(a, lo, hi *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Clip(a, lo, hi) })
}

func (s *scope) neg(a *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Negative(a) })
}

func (s *scope) sigmoid(a *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Sigmoid(a) })
}

// silu is mlx.nn.silu: x · sigmoid(x).
func (s *scope) silu(x *mlx.Array) *mlx.Array { return s.mul(x, s.sigmoid(x)) }

func (s *scope) matmul(a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Matmul(a, b) })
}

func (s *scope) addmm(c, a, b *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Addmm(c, a, b, 1, 1) })
}

func (s *scope) transpose(a *mlx.Array, axes ...int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Transpose(a, axes...) })
}

func (s *scope) swapaxes(a *mlx.Array, x, y int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Swapaxes(a, x, y) })
}

func (s *scope) reshape(a *mlx.Array, shape ...int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Reshape(a, shape...) })
}

func (s *scope) flatten(a *mlx.Array, start, end int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Flatten(a, start, end) })
}

func (s *scope) expandDims(a *mlx.Array, axes ...int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.ExpandDims(a, axes...) })
}

func (s *scope) squeeze(a *mlx.Array, axes ...int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Squeeze(a, axes...) })
}

func (s *scope) astype(a *mlx.Array, dt mlx.Dtype) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.AsType(a, dt) })
}

func (s *scope) take(a, idx *mlx.Array, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Take(a, idx, axis) })
}

func (s *scope) takeAlong(a, idx *mlx.Array, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.TakeAlongAxis(a, idx, axis) })
}

func (s *scope) putAlong(a, idx, v *mlx.Array, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.PutAlongAxis(a, idx, v, axis) })
}

func (s *scope) concat(arrays []*mlx.Array, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Concatenate(arrays, axis) })
}

func (s *scope) sliceUpdate(src, upd *mlx.Array, start, stop []int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.SliceUpdate(src, upd, start, stop, nil) })
}

// slice is a[start:stop] over every axis; a negative stop counts from the
// axis' end, as Python's does.
func (s *scope) slice(a *mlx.Array, start, stop []int) *mlx.Array {
	if s.err != nil {
		return nil
	}
	shape := a.Shape()
	st := append([]int(nil), stop...)
	for i := range st {
		if st[i] < 0 {
			st[i] += shape[i]
		}
	}
	return s.do(func() (*mlx.Array, error) { return mlx.Slice(a, start, st, nil) })
}

// lastSlice is a[..., lo:hi].
func (s *scope) lastSlice(a *mlx.Array, lo, hi int) *mlx.Array {
	if s.err != nil {
		return nil
	}
	shape := a.Shape()
	start := make([]int, len(shape))
	stop := append([]int(nil), shape...)
	start[len(shape)-1], stop[len(shape)-1] = lo, hi
	return s.do(func() (*mlx.Array, error) { return mlx.Slice(a, start, stop, nil) })
}

// split2 is mx.split(a, [at], axis).
func (s *scope) split2(a *mlx.Array, at, axis int) (*mlx.Array, *mlx.Array) {
	if s.err != nil {
		return nil, nil
	}
	parts, err := mlx.SplitSections(a, []int{at}, axis)
	if err != nil {
		s.err = err
		return nil, nil
	}
	s.temps = append(s.temps, parts...)
	return parts[0], parts[1]
}

func (s *scope) sum(a *mlx.Array, keepdims bool, axes ...int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Sum(a, keepdims, axes...) })
}

func (s *scope) logsumexp(a *mlx.Array, keepdims bool, axes ...int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Logsumexp(a, keepdims, axes...) })
}

func (s *scope) topk(a *mlx.Array, k, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Topk(a, k, axis) })
}

func (s *scope) argpartition(a *mlx.Array, kth, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Argpartition(a, kth, axis) })
}

func (s *scope) argsort(a *mlx.Array, axis int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Argsort(a, axis) })
}

func (s *scope) arange(start, stop int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Arange(float64(start), float64(stop), 1, mlx.Int32) })
}

func (s *scope) zeros(shape []int, dt mlx.Dtype) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Zeros(shape, dt) })
}

// f32 is a float32 scalar: what a Python float becomes next to a float32
// array in MLX.
func (s *scope) f32(v float64) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Scalar(float32(v)) })
}

// like is v as Python MLX makes a Python float next to the array x: a
// scalar of x's dtype when x is floating (so bfloat16 stays bfloat16),
// float32 otherwise.
func (s *scope) like(v float64, x *mlx.Array) *mlx.Array {
	f := s.f32(v)
	if s.err != nil || x == nil {
		return f
	}
	switch dt := x.Dtype(); dt {
	case mlx.Float16, mlx.Bfloat16, mlx.Float64:
		return s.astype(f, dt)
	}
	return f
}

// lowest is numpy's finfo(dt).min, the most negative finite value of the
// floating dtype dt, as a scalar of dt.
func (s *scope) lowest(dt mlx.Dtype) *mlx.Array {
	switch dt {
	case mlx.Float16:
		return s.astype(s.f32(-65504), dt)
	case mlx.Bfloat16:
		// 0xff7f: the largest bfloat16 exponent with a full mantissa.
		return s.astype(s.f32(-3.3895313892515355e38), dt)
	}
	return s.f32(-math.MaxFloat32)
}

func (s *scope) i32(v int) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Scalar(int32(v)) })
}

func (s *scope) ids(ids []int) *mlx.Array {
	v := make([]int32, len(ids))
	for i, id := range ids {
		v[i] = int32(id)
	}
	return s.do(func() (*mlx.Array, error) { return mlx.FromSlice(v, 1, len(v)) })
}

func (s *scope) rmsNorm(x, w *mlx.Array, eps float64) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.RMSNorm(x, w, float32(eps)) })
}

func (s *scope) sdpa(q, k, v *mlx.Array, scale float64, mode string, mask *mlx.Array) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.ScaledDotProductAttention(q, k, v, float32(scale), mode, mask) })
}

func (s *scope) quantizedMatmul(x, w, scales, biases *mlx.Array, transpose bool, q mlx.Quantization) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.QuantizedMatmul(x, w, scales, biases, transpose, q) })
}

func (s *scope) dequantize(w, scales, biases *mlx.Array, q mlx.Quantization) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Dequantize(w, scales, biases, q) })
}

func (s *scope) gatherMM(a, b, rhs *mlx.Array, sorted bool) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.GatherMM(a, b, nil, rhs, sorted) })
}

func (s *scope) gatherQMM(x, w, scales, biases, rhs *mlx.Array, q mlx.Quantization, sorted bool) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.GatherQMM(x, w, scales, biases, nil, rhs, true, q, sorted) })
}

func (s *scope) allSum(x *mlx.Array, g *mlx.Group, st *mlx.Stream) *mlx.Array {
	if r := s.rider; r != nil && r.sum == nil && r.g == g && s.err == nil {
		return r.carry(s, x, st)
	}
	return s.do(func() (*mlx.Array, error) { return mlx.AllSum(x, g, st) })
}
