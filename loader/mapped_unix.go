//go:build darwin || linux

package loader

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

var pageSize = int64(os.Getpagesize())

// mapping is a private mapping of a file's byte range: data is the range,
// whole the pages that hold it.
type mapping struct {
	data, whole []byte
}

// unmap releases the mapping. It runs on whatever thread MLX frees the
// array on and calls nothing but munmap.
func (m *mapping) unmap() { _ = unix.Munmap(m.whole) }

// mapRange maps [off, off+n) of the file at path privately, readable and
// writable, and faults its pages in (see populate). The file is closed at
// once: the mapping keeps its pages.
func mapRange(path string, off, n int64) (*mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lo := off &^ (pageSize - 1)
	whole, err := unix.Mmap(int(f.Fd()), lo, int(off+n-lo), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("map %d bytes at %d: %w", n, off, err)
	}
	m := &mapping{data: whole[off-lo:], whole: whole}
	if err := populate(whole); err != nil {
		m.unmap()
		return nil, fmt.Errorf("read %d bytes at %d through the mapping (file truncated?): %w", n, off, err)
	}
	return m, nil
}
