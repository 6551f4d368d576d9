package loader

import "golang.org/x/sys/unix"

// populate starts reading the mapping's pages ahead of MLX's first touch.
// macOS has no call that faults a range in and reports a short file, so a
// file truncated while mapped still faults on access.
func populate(b []byte) error {
	_ = unix.Madvise(b, unix.MADV_WILLNEED)
	return nil
}
