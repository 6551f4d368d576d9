package mlx

import (
	"fmt"
)

// Ops are lazy: they return an Array describing the result, computed on the
// default stream (see SetDefaultDevice) when evaluated. A shape or dtype MLX
// rejects comes back as an *Error naming them. Each is the mlx-c function of
// the same name (mlx_sigmoid for Sigmoid, mlx_fast_rms_norm for RMSNorm, ...)
// with MLX's own semantics; an optional array argument may be nil.

// handles resolves the arrays' C handles; a nil entry stays 0, which mlx-c
// reads as an absent optional array.
func handles(op string, arrays []*Array, optional bool) ([]uintptr, error) {
	hs := make([]uintptr, len(arrays))
	for i, a := range arrays {
		if a == nil && optional {
			continue
		}
		h, err := a.handle()
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", op, i, err)
		}
		hs[i] = h
	}
	return hs, nil
}

// opLocked calls f with a result slot, the inputs' handles and the default
// stream, and returns the result as an owned Array. Inputs given as nil are
// passed as absent when optional is set, and are an error otherwise.
func opLocked(name string, optional bool, inputs []*Array, f func(res *uintptr, in []uintptr, s uintptr) int32) (*Array, error) {
	hs, err := handles(name, inputs, optional)
	if err != nil {
		return nil, err
	}
	s, err := defaultStreamLocked()
	if err != nil {
		return nil, err
	}
	res := slot(0)
	rc := f(res, hs, s)
	h := *res
	if err := check(name, rc); err != nil {
		if h != 0 {
			mlx_array_free(h)
		}
		return nil, err
	}
	return newArray(h), nil
}

func op(name string, inputs []*Array, f func(res *uintptr, in []uintptr, s uintptr) int32) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		var err error
		out, err = opLocked(name, false, inputs, f)
		return err
	})
	return out, err
}

// optOp is op for functions some of whose array arguments may be nil.
func optOp(name string, inputs []*Array, f func(res *uintptr, in []uintptr, s uintptr) int32) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		var err error
		out, err = opLocked(name, true, inputs, f)
		return err
	})
	return out, err
}

// vectorOp is op for functions whose result is an mlx_vector_array.
func vectorOp(name string, inputs []*Array, f func(res *uintptr, in []uintptr, s uintptr) int32) ([]*Array, error) {
	var out []*Array
	err := doErr(func() error {
		hs, err := handles(name, inputs, false)
		if err != nil {
			return err
		}
		s, err := defaultStreamLocked()
		if err != nil {
			return err
		}
		v := slot(1)
		*v = mlx_vector_array_new()
		vh := *v
		defer func() { mlx_vector_array_free(vh) }()
		if err := check(name, f(v, hs, s)); err != nil {
			return err
		}
		vh = *v
		out, err = unpackVectorLocked(vh)
		return err
	})
	return out, err
}

// withVector passes the arrays to f as an mlx_vector_array.
func withVector(name string, arrays []*Array, f func(v uintptr) (*Array, error)) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		v, err := vectorLocked(arrays)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer mlx_vector_array_free(v)
		out, err = f(v)
		return err
	})
	return out, err
}

func unary(name string, f func(*uintptr, uintptr, uintptr) int32, a *Array) (*Array, error) {
	return op(name, []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 { return f(res, in[0], s) })
}

func binary(name string, f func(*uintptr, uintptr, uintptr, uintptr) int32, a, b *Array) (*Array, error) {
	return op(name, []*Array{a, b}, func(res *uintptr, in []uintptr, s uintptr) int32 { return f(res, in[0], in[1], s) })
}

// allAxes returns axes, or every axis of a when none is given.
func allAxes(a *Array, axes []int) []int32 {
	if len(axes) == 0 {
		out := make([]int32, a.Ndim())
		for i := range out {
			out[i] = int32(i)
		}
		return out
	}
	return cInts(axes)
}

// ---- shapes, slices, joins ----

// Slice returns a[start:stop:strides] over every axis; strides may be nil
// for steps of one.
func Slice(a *Array, start, stop, strides []int) (*Array, error) {
	st, sp, sd := cInts(start), cInts(stop), ones32(strides, len(start))
	return op("mlx_slice", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_slice(res, in[0], st, sp, sd, s)
	})
}

func ones32(strides []int, n int) []int32 {
	if strides != nil {
		return cInts(strides)
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// SliceUpdate returns src with src[start:stop:strides] replaced by update
// (strides may be nil for steps of one). It is how a KV cache is written.
func SliceUpdate(src, update *Array, start, stop, strides []int) (*Array, error) {
	st, sp, sd := cInts(start), cInts(stop), ones32(strides, len(start))
	return op("mlx_slice_update", []*Array{src, update}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_slice_update(res, in[0], in[1], st, sp, sd, s)
	})
}

// Split splits a into n equal parts along axis.
func Split(a *Array, n, axis int) ([]*Array, error) {
	return vectorOp("mlx_split", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_split(res, in[0], int32(n), int32(axis), s)
	})
}

// SplitSections splits a along axis at the given indices.
func SplitSections(a *Array, indices []int, axis int) ([]*Array, error) {
	idx := cInts(indices)
	return vectorOp("mlx_split_sections", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_split_sections(res, in[0], idx, int32(axis), s)
	})
}

// Concatenate joins the arrays along axis.
func Concatenate(arrays []*Array, axis int) (*Array, error) {
	return withVector("mlx_concatenate_axis", arrays, func(v uintptr) (*Array, error) {
		return opLocked("mlx_concatenate_axis", false, nil, func(res *uintptr, _ []uintptr, s uintptr) int32 {
			return mlx_concatenate_axis(res, v, int32(axis), s)
		})
	})
}

// Stack joins the arrays along a new axis.
func Stack(arrays []*Array, axis int) (*Array, error) {
	return withVector("mlx_stack_axis", arrays, func(v uintptr) (*Array, error) {
		return opLocked("mlx_stack_axis", false, nil, func(res *uintptr, _ []uintptr, s uintptr) int32 {
			return mlx_stack_axis(res, v, int32(axis), s)
		})
	})
}

// Contiguous returns a row-contiguous copy of a when a is a strided view,
// and an array sharing a's buffer otherwise. Contiguous of a slice is how a
// shard stops pinning the full tensor it was cut from.
func Contiguous(a *Array) (*Array, error) {
	return op("mlx_contiguous", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_contiguous(res, in[0], false, s)
	})
}

// Copy returns an array equal to a. Like MLX's copy it may share a's buffer.
func Copy(a *Array) (*Array, error) { return unary("mlx_copy", mlx_copy, a) }

// Reshape returns a with a new shape of the same size.
func Reshape(a *Array, shape ...int) (*Array, error) {
	sh := cInts(shape)
	return op("mlx_reshape", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_reshape(res, in[0], sh, s)
	})
}

// Flatten merges axes start..end (inclusive; negative counts from the end).
func Flatten(a *Array, start, end int) (*Array, error) {
	return op("mlx_flatten", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_flatten(res, in[0], int32(start), int32(end), s)
	})
}

// ExpandDims inserts axes of size one.
func ExpandDims(a *Array, axes ...int) (*Array, error) {
	ax := cInts(axes)
	return op("mlx_expand_dims_axes", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_expand_dims_axes(res, in[0], ax, s)
	})
}

// Squeeze removes the given axes of size one, or every such axis when none
// is given.
func Squeeze(a *Array, axes ...int) (*Array, error) {
	var ax []int32
	if len(axes) == 0 {
		for i, d := range a.Shape() {
			if d == 1 {
				ax = append(ax, int32(i))
			}
		}
	} else {
		ax = cInts(axes)
	}
	return op("mlx_squeeze_axes", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_squeeze_axes(res, in[0], ax, s)
	})
}

// BroadcastTo broadcasts a to shape.
func BroadcastTo(a *Array, shape ...int) (*Array, error) {
	sh := cInts(shape)
	return op("mlx_broadcast_to", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_broadcast_to(res, in[0], sh, s)
	})
}

// Transpose permutes a's axes; with no axes it reverses them.
func Transpose(a *Array, axes ...int) (*Array, error) {
	if len(axes) == 0 {
		n := a.Ndim()
		axes = make([]int, n)
		for i := range axes {
			axes[i] = n - 1 - i
		}
	}
	ax := cInts(axes)
	return op("mlx_transpose_axes", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_transpose_axes(res, in[0], ax, s)
	})
}

// Swapaxes exchanges two axes.
func Swapaxes(a *Array, axis1, axis2 int) (*Array, error) {
	return op("mlx_swapaxes", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_swapaxes(res, in[0], int32(axis1), int32(axis2), s)
	})
}

// AsType converts a's elements to dt.
func AsType(a *Array, dt Dtype) (*Array, error) {
	return op("mlx_astype", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_astype(res, in[0], int32(dt), s)
	})
}

// View reinterprets a's bytes as dt (the last axis scales by the size
// ratio).
func View(a *Array, dt Dtype) (*Array, error) {
	return op("mlx_view", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_view(res, in[0], int32(dt), s)
	})
}

// ---- creation ----

// Zeros returns an array of zeros.
func Zeros(shape []int, dt Dtype) (*Array, error) {
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	sh := cInts(shape)
	return op("mlx_zeros", nil, func(res *uintptr, _ []uintptr, s uintptr) int32 {
		return mlx_zeros(res, sh, int32(dt), s)
	})
}

// Ones returns an array of ones.
func Ones(shape []int, dt Dtype) (*Array, error) {
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	sh := cInts(shape)
	return op("mlx_ones", nil, func(res *uintptr, _ []uintptr, s uintptr) int32 {
		return mlx_ones(res, sh, int32(dt), s)
	})
}

// Full returns an array of the given shape filled by broadcasting v,
// converted to dt.
func Full(shape []int, v *Array, dt Dtype) (*Array, error) {
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	sh := cInts(shape)
	return op("mlx_full", []*Array{v}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_full(res, sh, in[0], int32(dt), s)
	})
}

// Arange returns start, start+step, ... up to (not including) stop, as dt.
func Arange(start, stop, step float64, dt Dtype) (*Array, error) {
	return op("mlx_arange", nil, func(res *uintptr, _ []uintptr, s uintptr) int32 {
		return mlx_arange(res, start, stop, step, int32(dt), s)
	})
}

// ---- element-wise ----

// Sigmoid is 1 / (1 + exp(-a)).
func Sigmoid(a *Array) (*Array, error) { return unary("mlx_sigmoid", mlx_sigmoid, a) }

// Exp is e**a.
func Exp(a *Array) (*Array, error) { return unary("mlx_exp", mlx_exp, a) }

// Log is the natural logarithm.
func Log(a *Array) (*Array, error) { return unary("mlx_log", mlx_log, a) }

// Negative is -a.
func Negative(a *Array) (*Array, error) { return unary("mlx_negative", mlx_negative, a) }

// Sqrt is the square root.
func Sqrt(a *Array) (*Array, error) { return unary("mlx_sqrt", mlx_sqrt, a) }

// Rsqrt is 1 / sqrt(a).
func Rsqrt(a *Array) (*Array, error) { return unary("mlx_rsqrt", mlx_rsqrt, a) }

// Square is a * a.
func Square(a *Array) (*Array, error) { return unary("mlx_square", mlx_square, a) }

// Abs is |a|.
func Abs(a *Array) (*Array, error) { return unary("mlx_abs", mlx_abs, a) }

// Tanh is the hyperbolic tangent.
func Tanh(a *Array) (*Array, error) { return unary("mlx_tanh", mlx_tanh, a) }

// Sin is the sine.
func Sin(a *Array) (*Array, error) { return unary("mlx_sin", mlx_sin, a) }

// Cos is the cosine.
func Cos(a *Array) (*Array, error) { return unary("mlx_cos", mlx_cos, a) }

// Erf is the error function.
func Erf(a *Array) (*Array, error) { return unary("mlx_erf", mlx_erf, a) }

// Floor rounds down.
func Floor(a *Array) (*Array, error) { return unary("mlx_floor", mlx_floor, a) }

// Ceil rounds up.
func Ceil(a *Array) (*Array, error) { return unary("mlx_ceil", mlx_ceil, a) }

// LogicalNot is !a.
func LogicalNot(a *Array) (*Array, error) { return unary("mlx_logical_not", mlx_logical_not, a) }

// Add is a + b with broadcasting, as are the other binary ops.
func Add(a, b *Array) (*Array, error) { return binary("mlx_add", mlx_add, a, b) }

// Subtract is a - b.
func Subtract(a, b *Array) (*Array, error) { return binary("mlx_subtract", mlx_subtract, a, b) }

// Multiply is a * b.
func Multiply(a, b *Array) (*Array, error) { return binary("mlx_multiply", mlx_multiply, a, b) }

// Divide is a / b.
func Divide(a, b *Array) (*Array, error) { return binary("mlx_divide", mlx_divide, a, b) }

// FloorDivide is floor(a / b).
func FloorDivide(a, b *Array) (*Array, error) {
	return binary("mlx_floor_divide", mlx_floor_divide, a, b)
}

// Remainder is a mod b, with the sign of b.
func Remainder(a, b *Array) (*Array, error) { return binary("mlx_remainder", mlx_remainder, a, b) }

// Power is a ** b.
func Power(a, b *Array) (*Array, error) { return binary("mlx_power", mlx_power, a, b) }

// Maximum is the element-wise larger of a and b.
func Maximum(a, b *Array) (*Array, error) { return binary("mlx_maximum", mlx_maximum, a, b) }

// Minimum is the element-wise smaller of a and b.
func Minimum(a, b *Array) (*Array, error) { return binary("mlx_minimum", mlx_minimum, a, b) }

// Equal is a == b.
func Equal(a, b *Array) (*Array, error) { return binary("mlx_equal", mlx_equal, a, b) }

// NotEqual is a != b.
func NotEqual(a, b *Array) (*Array, error) { return binary("mlx_not_equal", mlx_not_equal, a, b) }

// Greater is a > b.
func Greater(a, b *Array) (*Array, error) { return binary("mlx_greater", mlx_greater, a, b) }

// GreaterEqual is a >= b.
func GreaterEqual(a, b *Array) (*Array, error) {
	return binary("mlx_greater_equal", mlx_greater_equal, a, b)
}

// Less is a < b.
func Less(a, b *Array) (*Array, error) { return binary("mlx_less", mlx_less, a, b) }

// LessEqual is a <= b.
func LessEqual(a, b *Array) (*Array, error) { return binary("mlx_less_equal", mlx_less_equal, a, b) }

// LogicalAnd is a && b.
func LogicalAnd(a, b *Array) (*Array, error) {
	return binary("mlx_logical_and", mlx_logical_and, a, b)
}

// LogicalOr is a || b.
func LogicalOr(a, b *Array) (*Array, error) { return binary("mlx_logical_or", mlx_logical_or, a, b) }

// Where picks x where cond is true and y elsewhere.
func Where(cond, x, y *Array) (*Array, error) {
	return op("mlx_where", []*Array{cond, x, y}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_where(res, in[0], in[1], in[2], s)
	})
}

// Clip limits a to [lo, hi]; either bound may be nil for none.
func Clip(a, lo, hi *Array) (*Array, error) {
	if a == nil {
		return nil, fmt.Errorf("mlx_clip: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_clip", []*Array{a, lo, hi}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_clip(res, in[0], in[1], in[2], s)
	})
}

// ---- matrix products ----

// Matmul is the matrix product a @ b (batched over leading axes).
func Matmul(a, b *Array) (*Array, error) { return binary("mlx_matmul", mlx_matmul, a, b) }

// Addmm is alpha * (a @ b) + beta * c, in one op, as a Linear layer with a
// bias computes it.
func Addmm(c, a, b *Array, alpha, beta float32) (*Array, error) {
	return op("mlx_addmm", []*Array{c, a, b}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_addmm(res, in[0], in[1], in[2], alpha, beta, s)
	})
}

// GatherMM is a @ b over batches picked by the index arrays (nil: every
// batch in order): the matrix product of a mixture of experts.
func GatherMM(a, b, lhsIndices, rhsIndices *Array, sortedIndices bool) (*Array, error) {
	if a == nil || b == nil {
		return nil, fmt.Errorf("mlx_gather_mm: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_gather_mm", []*Array{a, b, lhsIndices, rhsIndices}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_gather_mm(res, in[0], in[1], in[2], in[3], sortedIndices, s)
	})
}

// Quantization describes MLX's affine quantization: each group of
// GroupSize consecutive weights along the last axis is stored in Bits bits
// with a scale and a bias. mlx-lm's 4-bit models use {64, 4}.
type Quantization struct {
	GroupSize int
	Bits      int
}

// Quantize quantizes w along its last axis; it returns the packed uint32
// weights, the scales and the biases, as mlx-lm stores them.
func Quantize(w *Array, q Quantization) (wq, scales, biases *Array, err error) {
	out, err := vectorOp("mlx_quantize", []*Array{w}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_quantize(res, in[0], optInt(q.GroupSize, true), optInt(q.Bits, true), "affine", 0, s)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if len(out) != 3 {
		FreeAll(out...)
		return nil, nil, nil, fmt.Errorf("mlx: mlx_quantize returned %d arrays, want 3", len(out))
	}
	return out[0], out[1], out[2], nil
}

// Dequantize reverses Quantize (biases may be nil for modes without them).
func Dequantize(wq, scales, biases *Array, q Quantization) (*Array, error) {
	if wq == nil || scales == nil {
		return nil, fmt.Errorf("mlx_dequantize: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_dequantize", []*Array{wq, scales, biases}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_dequantize(res, in[0], in[1], in[2], optInt(q.GroupSize, true), optInt(q.Bits, true),
			"affine", 0, 0, s)
	})
}

// QuantizedMatmul multiplies x by the quantized matrix (wq, scales, biases):
// x @ Wᵀ when transpose is true, as a quantized Linear layer does.
func QuantizedMatmul(x, wq, scales, biases *Array, transpose bool, q Quantization) (*Array, error) {
	if x == nil || wq == nil || scales == nil {
		return nil, fmt.Errorf("mlx_quantized_matmul: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_quantized_matmul", []*Array{x, wq, scales, biases}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_quantized_matmul(res, in[0], in[1], in[2], in[3], transpose,
			optInt(q.GroupSize, true), optInt(q.Bits, true), "affine", s)
	})
}

// GatherQMM is QuantizedMatmul over batches of quantized matrices picked by
// the index arrays (nil: every batch in order): a quantized mixture of
// experts. sortedIndices promises rhsIndices is sorted, which MLX exploits.
func GatherQMM(x, wq, scales, biases, lhsIndices, rhsIndices *Array, transpose bool, q Quantization, sortedIndices bool) (*Array, error) {
	if x == nil || wq == nil || scales == nil {
		return nil, fmt.Errorf("mlx_gather_qmm: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_gather_qmm", []*Array{x, wq, scales, biases, lhsIndices, rhsIndices}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_gather_qmm(res, in[0], in[1], in[2], in[3], in[4], in[5], transpose,
			optInt(q.GroupSize, true), optInt(q.Bits, true), "affine", sortedIndices, s)
	})
}

// ---- reductions, scans, sorting ----

func reduce(name string, f func(*uintptr, uintptr, []int32, bool, uintptr) int32, a *Array, flag bool, axes []int) (*Array, error) {
	if a == nil {
		return nil, fmt.Errorf("%s: %w: nil Array", name, ErrFreed)
	}
	ax := allAxes(a, axes)
	return op(name, []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return f(res, in[0], ax, flag, s)
	})
}

// Sum reduces a over the given axes, or over every axis when none is given;
// so do Mean, Max, Min and Logsumexp.
func Sum(a *Array, keepdims bool, axes ...int) (*Array, error) {
	return reduce("mlx_sum_axes", mlx_sum_axes, a, keepdims, axes)
}

// Mean is the arithmetic mean.
func Mean(a *Array, keepdims bool, axes ...int) (*Array, error) {
	return reduce("mlx_mean_axes", mlx_mean_axes, a, keepdims, axes)
}

// Max is the largest element.
func Max(a *Array, keepdims bool, axes ...int) (*Array, error) {
	return reduce("mlx_max_axes", mlx_max_axes, a, keepdims, axes)
}

// Min is the smallest element.
func Min(a *Array, keepdims bool, axes ...int) (*Array, error) {
	return reduce("mlx_min_axes", mlx_min_axes, a, keepdims, axes)
}

// Logsumexp is log(sum(exp(a))), computed stably.
func Logsumexp(a *Array, keepdims bool, axes ...int) (*Array, error) {
	return reduce("mlx_logsumexp_axes", mlx_logsumexp_axes, a, keepdims, axes)
}

// Softmax is exp(a) / sum(exp(a)) over the axes (every axis when none);
// precise computes in float32 for half-precision inputs.
func Softmax(a *Array, precise bool, axes ...int) (*Array, error) {
	return reduce("mlx_softmax_axes", mlx_softmax_axes, a, precise, axes)
}

// Argmax is the index of the largest element along axis.
func Argmax(a *Array, axis int, keepdims bool) (*Array, error) {
	return op("mlx_argmax_axis", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_argmax_axis(res, in[0], int32(axis), keepdims, s)
	})
}

// Argmin is the index of the smallest element along axis.
func Argmin(a *Array, axis int, keepdims bool) (*Array, error) {
	return op("mlx_argmin_axis", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_argmin_axis(res, in[0], int32(axis), keepdims, s)
	})
}

// Cumsum is the running sum along axis.
func Cumsum(a *Array, axis int, reverse, inclusive bool) (*Array, error) {
	return op("mlx_cumsum", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_cumsum(res, in[0], int32(axis), reverse, inclusive, s)
	})
}

// Argpartition returns indices that put the kth smallest element of each
// row along axis in place, smaller ones before it, larger after.
func Argpartition(a *Array, kth, axis int) (*Array, error) {
	return op("mlx_argpartition_axis", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_argpartition_axis(res, in[0], int32(kth), int32(axis), s)
	})
}

// Argsort returns the indices that sort a along axis.
func Argsort(a *Array, axis int) (*Array, error) {
	return op("mlx_argsort_axis", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_argsort_axis(res, in[0], int32(axis), s)
	})
}

// Sort sorts a along axis.
func Sort(a *Array, axis int) (*Array, error) {
	return op("mlx_sort_axis", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_sort_axis(res, in[0], int32(axis), s)
	})
}

// Topk returns the k largest elements along axis (in no particular order).
func Topk(a *Array, k, axis int) (*Array, error) {
	return op("mlx_topk_axis", []*Array{a}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_topk_axis(res, in[0], int32(k), int32(axis), s)
	})
}

// ---- indexing ----

// Take gathers a's entries at indices along axis.
func Take(a, indices *Array, axis int) (*Array, error) {
	return op("mlx_take_axis", []*Array{a, indices}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_take_axis(res, in[0], in[1], int32(axis), s)
	})
}

// TakeAlongAxis gathers a's entries at indices, which has a's rank.
func TakeAlongAxis(a, indices *Array, axis int) (*Array, error) {
	return op("mlx_take_along_axis", []*Array{a, indices}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_take_along_axis(res, in[0], in[1], int32(axis), s)
	})
}

// PutAlongAxis returns a with values written at indices along axis.
func PutAlongAxis(a, indices, values *Array, axis int) (*Array, error) {
	return op("mlx_put_along_axis", []*Array{a, indices, values}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_put_along_axis(res, in[0], in[1], in[2], int32(axis), s)
	})
}

// ScatterAddAxis returns a with values added at indices along axis, which
// has a's rank; an index given twice gets both values, added in order.
func ScatterAddAxis(a, indices, values *Array, axis int) (*Array, error) {
	return op("mlx_scatter_add_axis", []*Array{a, indices, values}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_scatter_add_axis(res, in[0], in[1], in[2], int32(axis), s)
	})
}

// ---- fast kernels ----

// RMSNorm normalises x over its last axis by its root mean square and
// scales by weight (nil: no scale).
func RMSNorm(x, weight *Array, eps float32) (*Array, error) {
	if x == nil {
		return nil, fmt.Errorf("mlx_fast_rms_norm: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_fast_rms_norm", []*Array{x, weight}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_fast_rms_norm(res, in[0], in[1], eps, s)
	})
}

// LayerNorm normalises x over its last axis, then scales and shifts (nil
// weight or bias: none).
func LayerNorm(x, weight, bias *Array, eps float32) (*Array, error) {
	if x == nil {
		return nil, fmt.Errorf("mlx_fast_layer_norm: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_fast_layer_norm", []*Array{x, weight, bias}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_fast_layer_norm(res, in[0], in[1], in[2], eps, s)
	})
}

// RoPE applies rotary position embeddings to the first dims features of x
// for positions offset, offset+1, ... along the second-to-last axis. With
// freqs nil the frequencies are base**(-2i/dims); otherwise freqs gives
// them (dims/2 values) and base is unused. traditional rotates adjacent
// pairs instead of the two halves.
func RoPE(x *Array, dims int, traditional bool, base, scale float32, offset int, freqs *Array) (*Array, error) {
	if x == nil {
		return nil, fmt.Errorf("mlx_fast_rope: %w: nil Array", ErrFreed)
	}
	b := optFloat(base, freqs == nil)
	return optOp("mlx_fast_rope", []*Array{x, freqs}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_fast_rope(res, in[0], int32(dims), traditional, b, scale, int32(offset), in[1], s)
	})
}

// ScaledDotProductAttention is softmax(scale · q kᵀ + mask) v over heads
// ([B, H, L, D] inputs; k and v may have fewer heads than q, which divides
// them). maskMode is "" (no mask, or the additive or boolean mask array
// given), or "causal".
func ScaledDotProductAttention(q, k, v *Array, scale float32, maskMode string, mask *Array) (*Array, error) {
	if q == nil || k == nil || v == nil {
		return nil, fmt.Errorf("mlx_fast_scaled_dot_product_attention: %w: nil Array", ErrFreed)
	}
	if maskMode == "" && mask != nil {
		maskMode = "array"
	}
	return optOp("mlx_fast_scaled_dot_product_attention", []*Array{q, k, v, mask}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_fast_scaled_dot_product_attention(res, in[0], in[1], in[2], scale, maskMode, in[3], 0, s)
	})
}

// ---- random ----

// RandomSeed seeds the default random key of the MLX thread, which every
// random op without a key uses.
func RandomSeed(seed uint64) error {
	return doErr(func() error { return check("mlx_random_seed", mlx_random_seed(seed)) })
}

// RandomKey returns a PRNG key for seed.
func RandomKey(seed uint64) (*Array, error) {
	return op("mlx_random_key", nil, func(res *uintptr, _ []uintptr, _ uintptr) int32 {
		return mlx_random_key(res, seed)
	})
}

// RandomSplit splits key into num new keys ([num, 2]).
func RandomSplit(key *Array, num int) (*Array, error) {
	return op("mlx_random_split_num", []*Array{key}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_random_split_num(res, in[0], int32(num), s)
	})
}

// RandomCategorical samples an index along axis from the distribution of
// the unnormalised log-probabilities logits; key nil uses the default key.
func RandomCategorical(logits *Array, axis int, key *Array) (*Array, error) {
	if logits == nil {
		return nil, fmt.Errorf("mlx_random_categorical: %w: nil Array", ErrFreed)
	}
	return optOp("mlx_random_categorical", []*Array{logits, key}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_random_categorical(res, in[0], int32(axis), in[1], s)
	})
}

// RandomUniform samples uniformly in [low, high) (scalars or broadcastable
// arrays) with the given shape and dtype; key nil uses the default key.
func RandomUniform(low, high *Array, shape []int, dt Dtype, key *Array) (*Array, error) {
	if low == nil || high == nil {
		return nil, fmt.Errorf("mlx_random_uniform: %w: nil Array", ErrFreed)
	}
	sh := cInts(shape)
	return optOp("mlx_random_uniform", []*Array{low, high, key}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_random_uniform(res, in[0], in[1], sh, int32(dt), in[2], s)
	})
}

// RandomGumbel samples the standard Gumbel distribution; key nil uses the
// default key.
func RandomGumbel(shape []int, dt Dtype, key *Array) (*Array, error) {
	sh := cInts(shape)
	return optOp("mlx_random_gumbel", []*Array{key}, func(res *uintptr, in []uintptr, s uintptr) int32 {
		return mlx_random_gumbel(res, sh, int32(dt), in[0], s)
	})
}
