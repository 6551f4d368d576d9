package loader

import (
	"errors"

	"golang.org/x/sys/unix"
)

// madvPopulateRead is Linux 5.14's MADV_POPULATE_READ.
const madvPopulateRead = 22

// populate faults the mapping's pages in, readable, with one system call:
// faster than one trap per page inside MLX's copy, and a range past the
// end of a truncated file is an error here instead of a SIGBUS in C code.
// Kernels older than 5.14 (EINVAL) leave the pages to fault on access.
func populate(b []byte) error {
	err := unix.Madvise(b, madvPopulateRead)
	if errors.Is(err, unix.EINVAL) {
		return nil
	}
	return err
}
