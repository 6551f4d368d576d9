//go:build !linux

package testenv

import "testing"

// SmallDisk skips t: a small disk for a full-disk test is made with a Linux
// tmpfs mount.
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("a full disk is made with a tmpfs mount, on Linux only")
	return ""
}
