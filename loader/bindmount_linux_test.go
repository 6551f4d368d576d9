package loader

import (
	"os"
	"syscall"
	"testing"
)

// bindMount mounts src on a fresh directory: the same files under another
// path, which only device and inode numbers tell apart.
func bindMount(t *testing.T, src string) string {
	if os.Geteuid() != 0 {
		t.Skip("a bind mount needs root")
	}
	m := t.TempDir()
	if err := syscall.Mount(src, m, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(m, syscall.MNT_DETACH) })
	return m
}
