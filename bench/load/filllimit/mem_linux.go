package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// madvPopulateWrite is Linux 5.14's MADV_POPULATE_WRITE.
const madvPopulateWrite = 23

// freshMemory maps n bytes of anonymous memory and asks for transparent
// huge pages, as MLX's fill does on Linux (advice a kernel may refuse).
func freshMemory(n int64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	b, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, err
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	return b, nil
}

// prepare faults the whole pages of b in, writable, with one call, as
// MLX's fill does before a copy; the threads prepare their own pieces, so
// the faults are taken in parallel.
func prepare(b []byte) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo, hi := (p+4095)&^4095, (p+uintptr(len(b)))&^4095
	if hi > lo {
		_ = unix.Madvise(b[lo-p:hi-p], madvPopulateWrite)
	}
}
