package mlx

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Ops are lazy: they return an Array describing the result, computed on the
// default stream (see SetDefaultDevice) when evaluated. A shape or dtype MLX
// rejects comes back as an *Error naming them.

// opLocked resolves the inputs' handles and the default stream, calls f with
// a result slot and returns the result as an owned Array.
func opLocked(op string, inputs []*Array, f func(res uintptr, in []uintptr, s uintptr) uintptr) (*Array, error) {
	hs := make([]uintptr, len(inputs))
	for i, a := range inputs {
		h, err := a.handle()
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", op, i, err)
		}
		hs[i] = h
	}
	s, err := defaultStreamLocked()
	if err != nil {
		return nil, err
	}
	rc := f(slotAddr(0), hs, s)
	h := slots[0]
	if err := check(op, rc); err != nil {
		if h != 0 {
			purego.SyscallN(lib.sym.arrayFree, h)
		}
		return nil, err
	}
	return newArray(h), nil
}

func op(name string, inputs []*Array, f func(res uintptr, in []uintptr, s uintptr) uintptr) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		var err error
		out, err = opLocked(name, inputs, f)
		return err
	})
	return out, err
}

// vectorOp is op for functions whose result is an mlx_vector_array.
func vectorOp(name string, inputs []*Array, f func(res uintptr, in []uintptr, s uintptr) uintptr) ([]*Array, error) {
	var out []*Array
	err := doErr(func() error {
		hs := make([]uintptr, len(inputs))
		for i, a := range inputs {
			h, err := a.handle()
			if err != nil {
				return fmt.Errorf("%s: input %d: %w", name, i, err)
			}
			hs[i] = h
		}
		s, err := defaultStreamLocked()
		if err != nil {
			return err
		}
		addr := slotAddr(1)
		slots[1], _, _ = purego.SyscallN(lib.sym.vectorArrayNew)
		v := slots[1]
		defer purego.SyscallN(lib.sym.vectorArrayFree, v)
		rc := f(addr, hs, s)
		if err := check(name, rc); err != nil {
			return err
		}
		out, err = unpackVectorLocked(v)
		return err
	})
	return out, err
}

// Slice returns a[start:stop:strides] over every axis; strides may be nil
// for steps of one.
func Slice(a *Array, start, stop, strides []int) (*Array, error) {
	if strides == nil {
		strides = make([]int, len(start))
		for i := range strides {
			strides[i] = 1
		}
	}
	st, sp, sd := cShape(start), cShape(stop), cShape(strides)
	out, err := op("mlx_slice", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.slice, res, in[0],
			int32Ptr(st), uintptr(len(st)), int32Ptr(sp), uintptr(len(sp)), int32Ptr(sd), uintptr(len(sd)), s)
		return rc
	})
	runtime.KeepAlive(st)
	runtime.KeepAlive(sp)
	runtime.KeepAlive(sd)
	return out, err
}

// Split splits a into n equal parts along axis.
func Split(a *Array, n, axis int) ([]*Array, error) {
	return vectorOp("mlx_split", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.split, res, in[0], uintptr(int32(n)), uintptr(int32(axis)), s)
		return rc
	})
}

// SplitSections splits a along axis at the given indices.
func SplitSections(a *Array, indices []int, axis int) ([]*Array, error) {
	idx := cShape(indices)
	out, err := vectorOp("mlx_split_sections", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.splitSections, res, in[0], int32Ptr(idx), uintptr(len(idx)), uintptr(int32(axis)), s)
		return rc
	})
	runtime.KeepAlive(idx)
	return out, err
}

// Concatenate joins the arrays along axis.
func Concatenate(arrays []*Array, axis int) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		v, err := vectorLocked(arrays)
		if err != nil {
			return fmt.Errorf("mlx_concatenate_axis: %w", err)
		}
		defer purego.SyscallN(lib.sym.vectorArrayFree, v)
		out, err = opLocked("mlx_concatenate_axis", nil, func(res uintptr, _ []uintptr, s uintptr) uintptr {
			rc, _, _ := purego.SyscallN(lib.sym.concatenate, res, v, uintptr(int32(axis)), s)
			return rc
		})
		return err
	})
	return out, err
}

// Contiguous returns a row-contiguous copy of a when a is a strided view,
// and an array sharing a's buffer otherwise. Contiguous of a slice is how a
// shard stops pinning the full tensor it was cut from.
func Contiguous(a *Array) (*Array, error) {
	return op("mlx_contiguous", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.contiguous, res, in[0], 0, s)
		return rc
	})
}

// Reshape returns a with a new shape of the same size.
func Reshape(a *Array, shape ...int) (*Array, error) {
	sh := cShape(shape)
	out, err := op("mlx_reshape", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.reshape, res, in[0], int32Ptr(sh), uintptr(len(sh)), s)
		return rc
	})
	runtime.KeepAlive(sh)
	return out, err
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
	ax := cShape(axes)
	out, err := op("mlx_transpose_axes", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.transposeAxes, res, in[0], int32Ptr(ax), uintptr(len(ax)), s)
		return rc
	})
	runtime.KeepAlive(ax)
	return out, err
}

// AsType converts a's elements to dt.
func AsType(a *Array, dt Dtype) (*Array, error) {
	return op("mlx_astype", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.astype, res, in[0], uintptr(dt), s)
		return rc
	})
}

// View reinterprets a's bytes as dt (the last axis scales by the size
// ratio).
func View(a *Array, dt Dtype) (*Array, error) {
	return op("mlx_view", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.view, res, in[0], uintptr(dt), s)
		return rc
	})
}

func binary(name string, fn func() uintptr, a, b *Array) (*Array, error) {
	return op(name, []*Array{a, b}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(fn(), res, in[0], in[1], s)
		return rc
	})
}

// Matmul is the matrix product a @ b (batched over leading axes).
func Matmul(a, b *Array) (*Array, error) {
	return binary("mlx_matmul", func() uintptr { return lib.sym.matmul }, a, b)
}

// Add is a + b with broadcasting.
func Add(a, b *Array) (*Array, error) {
	return binary("mlx_add", func() uintptr { return lib.sym.add }, a, b)
}

// Multiply is a * b with broadcasting.
func Multiply(a, b *Array) (*Array, error) {
	return binary("mlx_multiply", func() uintptr { return lib.sym.multiply }, a, b)
}

// Sum reduces a over the given axes, or over every axis when none is given.
func Sum(a *Array, keepdims bool, axes ...int) (*Array, error) {
	if len(axes) == 0 {
		n := a.Ndim()
		axes = make([]int, n)
		for i := range axes {
			axes[i] = i
		}
	}
	ax := cShape(axes)
	out, err := op("mlx_sum_axes", []*Array{a}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.sumAxes, res, in[0], int32Ptr(ax), uintptr(len(ax)), boolArg(keepdims), s)
		return rc
	})
	runtime.KeepAlive(ax)
	return out, err
}

// Take gathers a's entries at indices along axis.
func Take(a, indices *Array, axis int) (*Array, error) {
	return op("mlx_take_axis", []*Array{a, indices}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.takeAxis, res, in[0], in[1], uintptr(int32(axis)), s)
		return rc
	})
}

// Zeros returns an array of zeros.
func Zeros(shape []int, dt Dtype) (*Array, error) {
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	sh := cShape(shape)
	out, err := op("mlx_zeros", nil, func(res uintptr, _ []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.zeros, res, int32Ptr(sh), uintptr(len(sh)), uintptr(dt), s)
		return rc
	})
	runtime.KeepAlive(sh)
	return out, err
}

func boolArg(b bool) uintptr {
	if b {
		return 1
	}
	return 0
}

// optInt packs an mlx_optional_int ({int value; bool has_value}, 8 bytes)
// the way both amd64 and arm64 pass it: in one integer register, the value
// in the low 32 bits and has_value in the next byte.
func optInt(v int, has bool) uintptr {
	if !has {
		return 0
	}
	return uintptr(uint32(int32(v))) | 1<<32
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
	mode := cString("affine")
	out, err := vectorOp("mlx_quantize", []*Array{w}, func(res uintptr, in []uintptr, s uintptr) uintptr {
		rc, _, _ := purego.SyscallN(lib.sym.quantize, res, in[0], optInt(q.GroupSize, true), optInt(q.Bits, true),
			uintptr(unsafe.Pointer(&mode[0])), 0, s)
		return rc
	})
	runtime.KeepAlive(mode)
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
	mode := cString("affine")
	in := []*Array{wq, scales}
	if biases != nil {
		in = append(in, biases)
	}
	out, err := op("mlx_dequantize", in, func(res uintptr, hs []uintptr, s uintptr) uintptr {
		var b uintptr
		if len(hs) > 2 {
			b = hs[2]
		}
		rc, _, _ := purego.SyscallN(lib.sym.dequantize, res, hs[0], hs[1], b, optInt(q.GroupSize, true), optInt(q.Bits, true),
			uintptr(unsafe.Pointer(&mode[0])), 0, optInt(0, false), s)
		return rc
	})
	runtime.KeepAlive(mode)
	return out, err
}

// QuantizedMatmul multiplies x by the quantized matrix (wq, scales, biases):
// x @ Wᵀ when transpose is true, as a quantized Linear layer does.
func QuantizedMatmul(x, wq, scales, biases *Array, transpose bool, q Quantization) (*Array, error) {
	mode := cString("affine")
	in := []*Array{x, wq, scales}
	if biases != nil {
		in = append(in, biases)
	}
	out, err := op("mlx_quantized_matmul", in, func(res uintptr, hs []uintptr, s uintptr) uintptr {
		var b uintptr
		if len(hs) > 3 {
			b = hs[3]
		}
		rc, _, _ := purego.SyscallN(lib.sym.quantizedMatmul, res, hs[0], hs[1], hs[2], b, boolArg(transpose),
			optInt(q.GroupSize, true), optInt(q.Bits, true), uintptr(unsafe.Pointer(&mode[0])), s)
		return rc
	})
	runtime.KeepAlive(mode)
	return out, err
}
