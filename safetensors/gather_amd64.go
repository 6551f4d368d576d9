package safetensors

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// The kernels are in gather_amd64.s.
//
//go:noescape
func gatherRowsNT(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)

//go:noescape
func gatherRowsPF(dst, src unsafe.Pointer, rows, run, stride, ahead uintptr)

//go:noescape
func gatherRowsLines(dst, src unsafe.Pointer, rows, run, stride, ahead, head uintptr)

//go:noescape
func streamNT(dst, src unsafe.Pointer, n uintptr)

// haveAVX says whether copyRows may use the kernels, which need AVX.
var haveAVX = cpu.X86.HasAVX

// copyRows copies rows runs of run bytes, the first at src[0] and each next
// stride bytes further, one after the other into dst.
//
// Runs from 32 bytes up to gatherMaxRun go through a kernel that prefetches
// the rows ahead: Go's copy() of a short run leaves the reads to the
// hardware prefetcher, which loses the stream at each gap between runs (a
// rank's half of a tensor split on its last axis in 512-byte runs copied at
// about a third of the speed of a contiguous copy of the same bytes). The
// stores are non-temporal, which saves reading each destination line from
// memory first: straight from the rows (gatherRowsNT) when dst is 64-byte
// aligned, or 32-byte aligned and the rows are not whole lines; for rows of
// whole lines (runs a multiple of 64, 128 bytes and up) into dst at any
// other offset (MLX's CPU allocator puts an array's data 8 bytes past a
// 16-byte boundary), on the lines inside each row, the line two rows share
// stored ordinarily (gatherRowsLines); else through copyRowsStaged.
func copyRows(dst, src []byte, rows, run, stride int) {
	if rows <= 0 || run <= 0 {
		return
	}
	_ = dst[rows*run-1]
	_ = src[(rows-1)*stride+run-1]
	if !haveAVX || run < 32 || run >= gatherMaxRun {
		copyRowsGo(dst, src, rows, run, stride)
		return
	}
	ahead := uintptr(gatherAhead * stride)
	mis := uintptr(unsafe.Pointer(&dst[0])) % 64
	lines := run%64 == 0 && run >= 128 && mis != 0
	if !lines && (run%32 != 0 || mis%32 != 0) {
		copyRowsStaged(dst, src, rows, run, stride, ahead)
		return
	}
	// A call copies at most gatherCallBytes: an assembly loop cannot be
	// preempted, and a long one would hold up a garbage collection.
	per := max(1, gatherCallBytes/run)
	for r := 0; r < rows; r += per {
		n := min(per, rows-r)
		d, s := unsafe.Pointer(&dst[r*run]), unsafe.Pointer(&src[r*stride])
		if lines {
			gatherRowsLines(d, s, uintptr(n), uintptr(run), uintptr(stride), ahead, 64-mis)
		} else {
			gatherRowsNT(d, s, uintptr(n), uintptr(run), uintptr(stride), ahead)
		}
	}
}

// stageBytes is the size of the buffer copyRowsStaged gathers rows in: well
// inside a core's L1 or L2 cache.
const stageBytes = 16 << 10

var stagePool = sync.Pool{New: func() any { return new([stageBytes + 64]byte) }}

// copyRowsStaged is copyRows for rows that do not keep dst 32-byte aligned
// and are not whole lines. Non-temporal stores need aligned addresses, and
// mixing them with ordinary stores on the lines where rows meet cost more
// than they saved (512-byte rows: 1.0 GB/s against 3.4 for copy() per run). So the
// rows are gathered, with ordinary stores and the prefetch, into a buffer
// that stays in the cache, laid out as dst is modulo 32, and the buffer
// goes to dst as one aligned stream of non-temporal stores; only the bytes
// before dst's first 32-byte boundary and after its last are stored
// ordinarily.
func copyRowsStaged(dst, src []byte, rows, run, stride int, ahead uintptr) {
	buf := stagePool.Get().(*[stageBytes + 64]byte)
	defer stagePool.Put(buf)
	// stage[0] is 32-byte aligned.
	stage := buf[(32-uintptr(unsafe.Pointer(&buf[0]))%32)%32:][:stageBytes+32]
	head := int((32 - uintptr(unsafe.Pointer(&dst[0]))%32) % 32)
	copy(dst[:head], src[:head]) // run >= 32 > head: all from row 0
	w := head                    // bytes of dst written
	lead := 0                    // bytes in stage[:lead] still to write, dst[w:w+lead]
	r, in := 0, head             // the next byte to stage: row r, byte in
	for r < rows {
		n := lead
		if in > 0 { // the rest of a row begun in the last round
			k := min(run-in, stageBytes-n)
			copy(stage[n:n+k], src[r*stride+in:r*stride+in+k])
			n += k
			if in += k; in == run {
				r, in = r+1, 0
			}
		}
		if in == 0 && r < rows {
			k := min((stageBytes-n)/run, rows-r)
			if k > 0 {
				gatherRowsPF(unsafe.Pointer(&stage[n]), unsafe.Pointer(&src[r*stride]),
					uintptr(k), uintptr(run), uintptr(stride), ahead)
				n += k * run
				r += k
			} else if n < stageBytes { // a row longer than the room left
				in = stageBytes - n
				copy(stage[n:stageBytes], src[r*stride:r*stride+in])
				n = stageBytes
			}
		}
		whole := n &^ 31
		if whole > 0 {
			streamNT(unsafe.Pointer(&dst[w]), unsafe.Pointer(&stage[0]), uintptr(whole))
			w += whole
		}
		lead = copy(stage, stage[whole:n])
	}
	copy(dst[w:], stage[:lead])
}
