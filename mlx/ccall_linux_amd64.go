package mlx

import (
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// ccall calls the C function at fn with integer-class arguments and returns
// its integer result. Up to six arguments, the registers of the System V
// ABI, it goes through this package's trampoline (ccall_linux_amd64.s)
// under runtime.cgocall, as purego does but without purego's general
// 15-argument frame, which costs a heap allocation and most of a small
// call's time; more go through purego.
func ccall(fn uintptr, args ...uintptr) uintptr {
	if len(args) > 6 {
		return ccallMany(fn, args)
	}
	// The frame is on the heap (pooled), not the stack: a Go callback
	// made by the C function (the error handler) may grow, and so move,
	// the calling goroutine's stack while C still holds the frame.
	f := framePool.Get().(*cframe)
	f.fn = fn
	f.a = [6]uintptr{}
	copy(f.a[:], args)
	runtimeCgocall(ccallTrampABI0, unsafe.Pointer(f))
	r := f.r
	framePool.Put(f)
	return r
}

// ccallMany passes more than six arguments through purego. It copies
// them so that ccall's own argument slice stays on the caller's stack.
func ccallMany(fn uintptr, args []uintptr) uintptr {
	var a [15]uintptr
	n := copy(a[:], args)
	r, _, _ := purego.SyscallN(fn, a[:n]...)
	return r
}

// cframe is what the trampoline reads its call from and writes the result
// to; the offsets are the assembly's.
type cframe struct {
	fn uintptr
	a  [6]uintptr
	r  uintptr
}

var framePool = sync.Pool{New: func() any { return new(cframe) }}

// ccallTrampABI0 is the address of the trampoline (set by the assembly).
var ccallTrampABI0 uintptr

// runtimeCgocall runs fn(arg) on the system stack with the C calling
// convention, the thread marked as in a system call meanwhile. purego
// makes it usable without cgo, and uses it the same way.
//
//go:linkname runtimeCgocall runtime.cgocall
//go:noescape
func runtimeCgocall(fn uintptr, arg unsafe.Pointer) int32
