package safetensors

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The kernels are in gather_amd64.s.
//
//go:noescape
func gatherRowsSSE(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)

//go:noescape
func gatherRowsAVX(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)

// haveAVX says whether copyRows may use gatherRowsAVX (its 32-byte
// non-temporal stores also need 32-byte-aligned rows).
var haveAVX = cpu.X86.HasAVX

// copyRows copies rows runs of run bytes, the first at src[0] and each next
// stride bytes further, one after the other into dst.
//
// Runs shorter than gatherMaxRun that keep dst 16-byte aligned go through
// gatherRowsAVX or gatherRowsSSE: non-temporal stores and a software prefetch of the rows
// ahead. Go's copy() of a short run uses ordinary stores, which read each
// destination line from memory before writing it, and the hardware
// prefetcher loses the stream at each gap between runs; a rank's half of
// a tensor split on its last axis in 512-byte runs copied at about a third
// of the speed of a contiguous copy of the same bytes.
func copyRows(dst, src []byte, rows, run, stride int) {
	if rows <= 0 || run <= 0 {
		return
	}
	_ = dst[rows*run-1]
	_ = src[(rows-1)*stride+run-1]
	if run%16 != 0 || run >= gatherMaxRun || uintptr(unsafe.Pointer(&dst[0]))%16 != 0 {
		copyRowsGo(dst, src, rows, run, stride)
		return
	}
	kernel := gatherRowsSSE
	if haveAVX && run%32 == 0 && uintptr(unsafe.Pointer(&dst[0]))%32 == 0 {
		kernel = gatherRowsAVX
	}
	ahead := uintptr(gatherAhead * stride)
	// A call copies at most gatherCallBytes: an assembly loop cannot be
	// preempted, and a long one would hold up a garbage collection.
	per := max(1, gatherCallBytes/run)
	for r := 0; r < rows; r += per {
		n := min(per, rows-r)
		kernel(unsafe.Pointer(&dst[r*run]), unsafe.Pointer(&src[r*stride]),
			uintptr(n), uintptr(run), uintptr(stride), ahead)
	}
}
