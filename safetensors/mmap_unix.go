//go:build darwin || linux

package safetensors

import (
	"os"

	"golang.org/x/sys/unix"
)

func mmapFile(f *os.File, size int64) ([]byte, error) {
	return unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
}

func munmap(b []byte) error { return unix.Munmap(b) }

const haveMmap = true

var pageSize = int64(os.Getpagesize())

// pageAlign widens [off, off+n) of b to whole pages, as madvise requires.
func pageAlign(b []byte, off, n int64) []byte {
	lo := off &^ (pageSize - 1)
	hi := off + n
	if hi > int64(len(b)) {
		hi = int64(len(b))
	}
	if lo >= hi {
		return nil
	}
	return b[lo:hi]
}

// adviseWillNeed asks the kernel to start reading [off, off+n) of the
// mapping, so that a copy finds the pages in memory instead of faulting them
// one by one. Advice is a hint: its failure changes nothing but speed.
func adviseWillNeed(b []byte, off, n int64) {
	if r := pageAlign(b, off, n); r != nil {
		_ = unix.Madvise(r, unix.MADV_WILLNEED)
	}
}

// adviseDontNeed tells the kernel the pages of [off, off+n) will not be
// touched again, so that they leave the process's resident set.
func adviseDontNeed(b []byte, off, n int64) {
	if r := pageAlign(b, off, n); r != nil {
		_ = unix.Madvise(r, unix.MADV_DONTNEED)
	}
}

// adviseSequential tells the kernel [off, off+n) will be read in order, so
// it reads ahead aggressively.
func adviseSequential(b []byte, off, n int64) {
	if r := pageAlign(b, off, n); r != nil {
		_ = unix.Madvise(r, unix.MADV_SEQUENTIAL)
	}
}
