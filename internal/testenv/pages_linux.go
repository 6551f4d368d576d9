package testenv

import (
	"os"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ResidentPages reports how many of the whole pages inside b are resident
// (mincore: in memory, for a file mapping in the page cache), and how many
// whole pages b holds.
func ResidentPages(t testing.TB, b []byte) (resident, pages int) {
	t.Helper()
	page := uintptr(os.Getpagesize())
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo, hi := (p+page-1)&^(page-1), (p+uintptr(len(b)))&^(page-1)
	if hi <= lo {
		return 0, 0
	}
	vec := make([]byte, (hi-lo)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, lo, hi-lo, uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, len(vec)
}

// DropFromPageCache writes the file at path back and asks the kernel to
// drop its pages from the page cache, as a cold start would find it. It is
// advice: callers check with ResidentPages that it was taken.
func DropFromPageCache(t testing.TB, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Fdatasync(fd); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}
