package mlx

import (
	"math"
	"unsafe"
)

// prefaultMin is the size from which preparing the pages pays for the two
// system calls.
const prefaultMin = 2 << 20

// PrefaultCache readies memory for allocations MLX is about to make on its
// own, such as the buffer of each array a Recv fills. For every size of at
// least 2 MiB it allocates that many bytes, faults the pages in as
// NewArrayFill does (huge pages, every core at once) and frees them into
// MLX's buffer cache, which hands a later allocation of the same size that
// very memory. The kernel's page zeroing then happens here, in parallel and
// ahead of time, instead of one 4 KiB fault after another inside the copy
// that writes the array (a socket receive, say), on that copy's thread.
//
// The cache limit is raised to hold the memory; restore puts it back and
// returns to the system whatever no allocation took. Both wait for MLX's
// CPU streams, as SetCacheLimit does: call them with nothing long queued.
// Active memory is unchanged once PrefaultCache returns (the bytes are
// cache until an allocation takes them), and its peak rises only to what
// those allocations reach anyway.
//
// Where the OS offers no bulk fault-in (macOS) or the C library cannot
// allocate uninitialised memory (an official libmlxc), it does nothing.
func PrefaultCache(sizes []int64) (restore func() error, err error) {
	nothing := func() error { return nil }
	if !prefaults || !haveThreadID {
		return nothing, nil
	}
	var total int64
	big := make([]int64, 0, len(sizes))
	for _, s := range sizes {
		if s >= prefaultMin && byteShape(s) != nil {
			big = append(big, s)
			total += s
		}
	}
	if len(big) == 0 {
		return nothing, nil
	}
	if err := Load(); err != nil {
		return nil, err
	}
	if sym._mlx_array_new_uninitialized == 0 {
		return nothing, nil
	}
	prev, err := SetCacheLimit(math.MaxInt64)
	if err != nil {
		return nil, err
	}
	restore = func() error {
		_, err := SetCacheLimit(prev)
		return err
	}
	if _, err := SetCacheLimit(prev + total); err != nil {
		_ = restore()
		return nil, err
	}
	// Held until every one is allocated, so that none is allocated from
	// another's freed memory.
	held := make([]*Array, 0, len(big))
	for _, s := range big {
		shape := byteShape(s)
		a, ptr, err := newUninitializedAnyThread(cInts(shape), shape, Uint8, int(s))
		if err != nil {
			FreeAll(held...)
			_ = restore()
			return nil, err
		}
		held = append(held, a)
		prefault(unsafe.Slice((*byte)(cPtr(ptr)), s))
	}
	FreeAll(held...)
	return restore, nil
}

// byteShape is a shape of uint8 with n elements whose every dimension fits
// MLX's int32; nil if n has no such shape of two dimensions.
func byteShape(n int64) []int {
	if n <= math.MaxInt32 {
		return []int{int(n)}
	}
	b := int64(1 << 30)
	for n%b != 0 {
		b >>= 1
	}
	if n/b > math.MaxInt32 {
		return nil
	}
	return []int{int(n / b), int(b)}
}
