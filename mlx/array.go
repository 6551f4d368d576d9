package mlx

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ebitengine/purego"
)

// Array is an MLX array: a handle to MLX memory and, until it is evaluated,
// to the lazy graph that computes it.
//
// The caller owns every Array this package returns and should Free it when
// done: memory comes back to MLX at once. Free is safe to call twice. An
// Array that becomes unreachable without Free is freed by a cleanup after
// garbage collection, exactly once — a safety net, not a substitute, since
// the collector does not see MLX's memory.
//
// An Array may be used from any goroutine; freeing it while another
// goroutine still uses it is a caller bug that surfaces as ErrFreed.
type Array struct {
	r *arrayRef
}

type arrayRef struct {
	h     uintptr // mlx_array.ctx; used on the MLX thread (see freeHandle)
	freed atomic.Bool
	// siblings is set for the outputs of a multi-output op: MLX's
	// destructor of such an array looks at its siblings, which an
	// evaluation on the MLX thread may be rewriting, so it is freed there.
	siblings bool
	shape    []int // read once at creation: shapes and dtypes never change
	dtype    Dtype
	// cleanup frees the handle if the Array is collected without Free;
	// Free stops it (a pending cleanup costs every later AddCleanup on the
	// same memory span a longer walk).
	cleanup runtime.Cleanup
}

// newArray takes ownership of handle h; call it on the MLX thread only.
func newArray(h uintptr) *Array {
	return ownArray(h, shapeLocked(h), Dtype(mlx_array_dtype(h)), false)
}

// ownArray takes ownership of handle h whose shape and dtype are known (the
// shape slice becomes the array's). It makes no C call, so it runs on any
// thread.
func ownArray(h uintptr, shape []int, dt Dtype, siblings bool) *Array {
	r := &arrayRef{h: h, shape: shape, dtype: dt, siblings: siblings}
	a := &Array{r: r}
	r.cleanup = runtime.AddCleanup(a, collectArray, r)
	return a
}

// collectArray is the cleanup of an Array the garbage collector found
// unreachable without Free.
func collectArray(r *arrayRef) {
	if r.freed.CompareAndSwap(false, true) {
		freeRef(r)
	}
}

// freeRef frees r's handle, which nothing can use any more (r.freed is set).
func freeRef(r *arrayRef) {
	if r.siblings {
		enqueueFree(r.h)
		return
	}
	freeHandle(r.h)
}

// handle returns the C handle; call it on the MLX thread only.
func (a *Array) handle() (uintptr, error) {
	if a == nil || a.r == nil {
		return 0, fmt.Errorf("%w: nil Array", ErrFreed)
	}
	if a.r.freed.Load() {
		return 0, ErrFreed
	}
	return a.r.h, nil
}

// Free releases the array's MLX memory (once no other array or pending
// computation refers to it). Calling Free twice, or on nil, does nothing.
func (a *Array) Free() {
	if a == nil || a.r == nil || !a.r.freed.CompareAndSwap(false, true) {
		return
	}
	a.r.cleanup.Stop()
	// Free does not wait, and every later call sees the memory already
	// returned: either it is freed right here, or it is queued behind the
	// calls already handed to the MLX thread (see freeHandle).
	freeRef(a.r)
}

// FreeAll frees every array given; nil entries are skipped.
func FreeAll(arrays ...*Array) {
	for _, a := range arrays {
		a.Free()
	}
}

// checkShape validates a Go shape and returns its element count.
func checkShape(shape []int) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 || d > math.MaxInt32 {
			return 0, shapeErr("dimension %d is %d in shape %v", i, d, shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return 0, shapeErr("shape %v has too many elements", shape)
		}
		n *= d
	}
	return n, nil
}

// FromSlice returns a new array holding a copy of data with the given shape
// (a 1-D array of len(data) when shape is empty).
func FromSlice[T Element](data []T, shape ...int) (*Array, error) {
	if len(shape) == 0 {
		shape = []int{len(data)}
	}
	var b []byte
	if len(data) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(data)*int(unsafe.Sizeof(data[0])))
	}
	a, err := NewArrayBytes(b, shape, dtypeOf[T]())
	runtime.KeepAlive(data)
	return a, err
}

// Scalar returns a 0-dimensional array holding v, as Python's
// mx.array(v) does.
func Scalar[T Element](v T) (*Array, error) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))
	a, err := NewArrayBytes(b, []int{}, dtypeOf[T]())
	runtime.KeepAlive(&v)
	return a, err
}

// NewArrayBytes returns a new array holding a copy of data, the row-major
// little-endian bytes of an array of the given shape and dtype. This is the
// way to make float16 and bfloat16 arrays from raw 16-bit words.
func NewArrayBytes(data []byte, shape []int, dt Dtype) (*Array, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("mlx: invalid dtype %d", int32(dt))
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	if want := n * dt.Size(); len(data) != want {
		return nil, shapeErr("%d bytes given for shape %v of %s (%d bytes)", len(data), shape, dt, want)
	}
	if err := Load(); err != nil {
		return nil, err
	}
	if !haveThreadID {
		return newArrayBytesOnWorker(data, shape, dt)
	}
	// Making an array from data is safe on any thread (it takes MLX's
	// allocator lock and builds an array with no graph), so it runs here,
	// without a trip to the MLX thread: that trip cost several times the
	// call itself.
	own := append(make([]int, 0, len(shape)), shape...)
	cs := cInts(shape)
	p := unsafe.Pointer(unsafe.SliceData(data))
	escape(p)
	runtime.LockOSThread()
	h := mlx_array_new_data(p, cs, int32(dt))
	var msg string
	if h == 0 {
		msg = takeThreadError()
	}
	runtime.UnlockOSThread()
	if h == 0 {
		return nil, &Error{Op: "mlx_array_new_data", Msg: msg}
	}
	return ownArray(h, own, dt, false), nil
}

// newArrayBytesOnWorker is NewArrayBytes where the calling thread cannot be
// told from the MLX thread, so that an error could not be matched to its call.
func newArrayBytesOnWorker(data []byte, shape []int, dt Dtype) (*Array, error) {
	cs := cInts(shape)
	var out *Array
	err := doErr(func() error {
		h := mlx_array_new_data(unsafe.Pointer(unsafe.SliceData(data)), cs, int32(dt))
		if err := checkHandle("mlx_array_new_data", h); err != nil {
			return err
		}
		out = newArray(h)
		return nil
	})
	return out, err
}

// external memory handed to MLX: payload id -> release function.
var (
	externalMu      sync.Mutex
	externalRelease = map[uintptr]func(){}
	externalNext    uintptr
	deleterOnce     sync.Once
	deleterPtr      uintptr
)

func deleterCallback() uintptr {
	deleterOnce.Do(func() {
		deleterPtr = purego.NewCallback(func(payload uintptr) {
			externalMu.Lock()
			release := externalRelease[payload]
			delete(externalRelease, payload)
			externalMu.Unlock()
			if release != nil {
				release()
			}
		})
	})
	return deleterPtr
}

// NewArrayExternal returns an array over nbytes of external memory at data,
// which must stay valid and unchanged until release is called. MLX calls
// release once it no longer needs the memory: right away when it copied the
// data (CPU and CUDA builds always copy; Metal copies unless data is
// page-aligned), else when the array and every view of it are freed.
//
// release may run on a thread Go did not create and on the MLX thread
// itself: it must not call this package. Never pass memory MLX could write
// into while someone else reads it (a read-only file mapping is never safe:
// MLX may donate the buffer to an op's output).
//
// It needs mlx-c ≥ 0.5 (mlx_array_new_data_managed_payload).
func NewArrayExternal(data unsafe.Pointer, nbytes int, shape []int, dt Dtype, release func()) (*Array, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("mlx: invalid dtype %d", int32(dt))
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	if want := n * dt.Size(); nbytes != want {
		return nil, shapeErr("%d bytes given for shape %v of %s (%d bytes)", nbytes, shape, dt, want)
	}
	if data == nil {
		return nil, shapeErr("nil data pointer")
	}
	if err := Load(); err != nil {
		return nil, err
	}
	if sym.mlx_array_new_data_managed_payload == 0 {
		return nil, fmt.Errorf("mlx: %s has no mlx_array_new_data_managed_payload (needs mlx-c >= 0.5)", lib.path)
	}
	cb := deleterCallback()
	externalMu.Lock()
	externalNext++
	id := externalNext
	if release == nil {
		release = func() {}
	}
	externalRelease[id] = release
	externalMu.Unlock()
	cs := cInts(shape)
	var out *Array
	err = doErr(func() error {
		h := mlx_array_new_data_managed_payload(uintptr(data), cs, int32(dt), id, cb)
		if err := checkHandle("mlx_array_new_data_managed_payload", h); err != nil {
			return err
		}
		out = newArray(h)
		return nil
	})
	if err != nil {
		// MLX never took the memory: release it here, once.
		externalMu.Lock()
		r := externalRelease[id]
		delete(externalRelease, id)
		externalMu.Unlock()
		if r != nil {
			r()
		}
	}
	return out, err
}

// newUninitializedLocked allocates an evaluated, row-contiguous array whose
// bytes the caller will write. With this project's library that is one
// allocation; with an official libmlxc, which has no such function, it is
// zeros made contiguous and evaluated (every byte written twice).
func newUninitializedLocked(shape []int32, dt Dtype) (*Array, error) {
	res := slot(0)
	if sym._mlx_array_new_uninitialized != 0 {
		if err := check("_mlx_array_new_uninitialized", _mlx_array_new_uninitialized(res, shape, int32(dt))); err != nil {
			return nil, err
		}
		return newArray(*res), nil
	}
	s, err := defaultStreamLocked()
	if err != nil {
		return nil, err
	}
	if err := check("mlx_zeros", mlx_zeros(res, shape, int32(dt), s)); err != nil {
		return nil, err
	}
	z := *res
	defer mlx_array_free(z)
	// zeros is a broadcast of one element; contiguous gives the array a
	// buffer of its own, which nothing else references.
	c := slot(1)
	if err := check("mlx_contiguous", mlx_contiguous(c, z, false, s)); err != nil {
		return nil, err
	}
	out := newArray(*c)
	if err := check("mlx_array_eval", mlx_array_eval(out.r.h)); err != nil {
		out.Free()
		return nil, err
	}
	return out, nil
}

// newUninitializedAnyThread is newUninitializedLocked with this project's
// library, on the calling thread, and returns the array's data pointer too
// (0 for an empty array).
func newUninitializedAnyThread(cs []int32, shape []int, dt Dtype, nbytes int) (*Array, uintptr, error) {
	res := new(uintptr)
	escape(unsafe.Pointer(res))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if rc := _mlx_array_new_uninitialized(res, cs, int32(dt)); rc != 0 {
		return nil, 0, &Error{Op: "_mlx_array_new_uninitialized", Msg: takeThreadError()}
	}
	out := ownArray(*res, append(make([]int, 0, len(shape)), shape...), dt, false)
	var ptr uintptr
	if nbytes > 0 {
		if ptr = mlx_array_data_uint8(out.r.h); ptr == 0 {
			msg := takeThreadError()
			out.Free()
			return nil, 0, &Error{Op: "mlx_array_data_uint8", Msg: msg}
		}
	}
	return out, ptr, nil
}

// NewArrayFill allocates an evaluated, row-contiguous array of the given
// shape and dtype in MLX's own memory and lets fill write its bytes in
// place, on the caller's goroutine (so that several arrays can be filled at
// once, from files for instance). The slice given to fill is valid only
// during the call. This is how a loader reads a tensor straight into the
// memory that becomes the MLX array: one copy, no staging buffer.
//
// The bytes given to fill are uninitialised (with this project's C ABI
// library the memory is allocated and not written, so each byte is written
// once, by fill): fill must write every one of them. If fill returns an
// error the array is freed and the error returned.
func NewArrayFill(shape []int, dt Dtype, fill func(dst []byte) error) (*Array, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("mlx: invalid dtype %d", int32(dt))
	}
	n, err := checkShape(shape)
	if err != nil {
		return nil, err
	}
	nbytes := n * dt.Size()
	cs := cInts(shape)
	if err := Load(); err != nil {
		return nil, err
	}
	var out *Array
	var ptr uintptr
	if haveThreadID && sym._mlx_array_new_uninitialized != 0 {
		// An allocation with no graph, like NewArrayBytes: safe here.
		out, ptr, err = newUninitializedAnyThread(cs, shape, dt, nbytes)
	} else {
		err = doErr(func() error {
			var err error
			out, err = newUninitializedLocked(cs, dt)
			if err != nil {
				return err
			}
			if nbytes > 0 {
				ptr = mlx_array_data_uint8(out.r.h)
				if ptr == 0 {
					return &Error{Op: "mlx_array_data_uint8", Msg: takeError()}
				}
			}
			return nil
		})
	}
	if err != nil {
		out.Free()
		return nil, err
	}
	if nbytes > 0 {
		dst := unsafe.Slice((*byte)(cPtr(ptr)), nbytes)
		prefault(dst)
		if err := fill(dst); err != nil {
			out.Free()
			return nil, err
		}
	} else if err := fill(nil); err != nil {
		out.Free()
		return nil, err
	}
	return out, nil
}

// Shape returns the array's dimensions (those it had, once freed).
func (a *Array) Shape() []int {
	if a == nil || a.r == nil {
		return nil
	}
	return append([]int(nil), a.r.shape...)
}

func shapeLocked(h uintptr) []int {
	nd := int(mlx_array_ndim(h))
	if nd == 0 {
		return []int{}
	}
	dims := unsafe.Slice((*int32)(cPtr(mlx_array_shape(h))), nd)
	out := make([]int, nd)
	for i, d := range dims {
		out[i] = int(d)
	}
	return out
}

// Info is what an array's handle tells without evaluating it.
type Info struct {
	Shape  []int
	Dtype  Dtype
	Size   int // elements
	Nbytes int
}

// Info returns shape, dtype, size and byte size; ErrFreed after Free.
func (a *Array) Info() (Info, error) {
	if a == nil || a.r == nil {
		return Info{}, fmt.Errorf("%w: nil Array", ErrFreed)
	}
	if a.r.freed.Load() {
		return Info{}, ErrFreed
	}
	n := a.Size()
	return Info{Shape: a.Shape(), Dtype: a.r.dtype, Size: n, Nbytes: n * a.r.dtype.Size()}, nil
}

// Dtype returns the element type.
func (a *Array) Dtype() Dtype {
	if a == nil || a.r == nil {
		return 0
	}
	return a.r.dtype
}

// Size returns the number of elements.
func (a *Array) Size() int {
	if a == nil || a.r == nil {
		return 0
	}
	n := 1
	for _, d := range a.r.shape {
		n *= d
	}
	return n
}

// Nbytes returns the size of the array's data in bytes.
func (a *Array) Nbytes() int { return a.Size() * a.Dtype().Size() }

// Ndim returns the number of dimensions.
func (a *Array) Ndim() int {
	if a == nil || a.r == nil {
		return 0
	}
	return len(a.r.shape)
}

// String is MLX's own printout of the array (which evaluates it).
func (a *Array) String() string {
	var s string
	err := doErr(func() error {
		h, err := a.handle()
		if err != nil {
			return err
		}
		str := new(uintptr)
		*str = mlx_string_new()
		defer func() { mlx_string_free(*str) }()
		if err := check("mlx_array_tostring", mlx_array_tostring(str, h)); err != nil {
			return err
		}
		s = goString(mlx_string_data(*str))
		return nil
	})
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

// Bytes evaluates the array and returns a copy of its data as row-major
// little-endian bytes (float16 and bfloat16 as raw 16-bit words).
func (a *Array) Bytes() ([]byte, error) {
	var out []byte
	err := doErr(func() error {
		return withDataLocked(a, func(b []byte) { out = append([]byte(nil), b...) })
	})
	return out, err
}

// withDataLocked evaluates a, makes it row-contiguous if it is a strided
// view, and passes its bytes to f, valid only during f.
func withDataLocked(a *Array, f func([]byte)) error {
	h, err := a.handle()
	if err != nil {
		return err
	}
	done := waitingFor()
	err = check("mlx_array_eval", mlx_array_eval(h))
	done()
	if err != nil {
		return err
	}
	contig := new(bool)
	if sym._mlx_array_is_row_contiguous != 0 {
		if err := check("_mlx_array_is_row_contiguous", _mlx_array_is_row_contiguous(contig, h)); err != nil {
			return err
		}
	}
	if !*contig {
		s, err := defaultStreamLocked()
		if err != nil {
			return err
		}
		c := slot(1)
		if err := check("mlx_contiguous", mlx_contiguous(c, h, false, s)); err != nil {
			return err
		}
		ch := *c
		defer mlx_array_free(ch)
		if err := check("mlx_array_eval", mlx_array_eval(ch)); err != nil {
			return err
		}
		h = ch
	}
	nb := mlx_array_nbytes(h)
	if nb == 0 {
		f(nil)
		return nil
	}
	p := mlx_array_data_uint8(h)
	if p == 0 {
		return &Error{Op: "mlx_array_data_uint8", Msg: takeError()}
	}
	f(unsafe.Slice((*byte)(cPtr(p)), int(nb)))
	return nil
}

// ToSlice evaluates a and returns a copy of its elements. T must match the
// array's dtype; uint16 also reads float16 and bfloat16 as raw words.
func ToSlice[T Element](a *Array) ([]T, error) {
	want := dtypeOf[T]()
	var out []T
	err := doErr(func() error {
		h, err := a.handle()
		if err != nil {
			return err
		}
		got := Dtype(mlx_array_dtype(h))
		if got != want && !(want == Uint16 && (got == Float16 || got == Bfloat16)) {
			return fmt.Errorf("mlx: array of %s read as %s", got, want)
		}
		return withDataLocked(a, func(b []byte) {
			var z T
			out = make([]T, len(b)/int(unsafe.Sizeof(z)))
			if len(out) > 0 {
				copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(b)), b)
			}
		})
	})
	return out, err
}

// Eval evaluates the arrays' graphs; afterwards their data is in memory and
// the graphs that produced them are released.
func Eval(arrays ...*Array) error { return evalWith(false, arrays) }

// AsyncEval starts evaluating the arrays and returns without waiting; a
// later Eval, Bytes or ToSlice waits for the result.
func AsyncEval(arrays ...*Array) error { return evalWith(true, arrays) }

func evalWith(async bool, arrays []*Array) error {
	return doErr(func() error {
		v, err := vectorLocked(arrays)
		if err != nil {
			return err
		}
		defer mlx_vector_array_free(v)
		defer waitingFor()()
		if async {
			return check("mlx_async_eval", mlx_async_eval(v))
		}
		return check("mlx_eval", mlx_eval(v))
	})
}

// vectorLocked builds an mlx_vector_array of the arrays' handles; the caller
// frees it.
func vectorLocked(arrays []*Array) (uintptr, error) {
	hs := make([]uintptr, len(arrays))
	for i, a := range arrays {
		h, err := a.handle()
		if err != nil {
			return 0, fmt.Errorf("array %d: %w", i, err)
		}
		hs[i] = h
	}
	v := mlx_vector_array_new_data(hs)
	if err := checkHandle("mlx_vector_array_new_data", v); err != nil {
		return 0, err
	}
	return v, nil
}

// unpackVectorLocked turns an mlx_vector_array into owned Arrays.
func unpackVectorLocked(v uintptr) ([]*Array, error) {
	n := mlx_vector_array_size(v)
	out := make([]*Array, 0, n)
	for i := uintptr(0); i < n; i++ {
		h := slot(0)
		if err := check("mlx_vector_array_get", mlx_vector_array_get(h, v, i)); err != nil {
			for _, a := range out {
				mlx_array_free(a.r.h)
				a.r.freed.Store(true)
			}
			return nil, err
		}
		hv := *h
		out = append(out, ownArray(hv, shapeLocked(hv), Dtype(mlx_array_dtype(hv)), true))
	}
	return out, nil
}

// ReadData evaluates the array and passes its row-major bytes to f without
// copying them (a strided view is made contiguous first). The slice is
// valid only during f, which runs on the MLX thread: it must not keep the
// slice nor call into this package. It is how a large array is checked or
// written out without a second copy of it in Go memory.
func (a *Array) ReadData(f func(data []byte) error) error {
	var ferr error
	err := doErr(func() error {
		return withDataLocked(a, func(b []byte) { ferr = f(b) })
	})
	if err != nil {
		return err
	}
	return ferr
}
