package mlx

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// freshAnon maps n bytes of anonymous memory that no page of has been
// touched yet.
func freshAnon(t testing.TB, n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func residentPages(t testing.TB, b []byte) (resident, pages int) {
	vec := make([]byte, (len(b)+4095)/4096)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, len(vec)
}

func TestPopulateFaultsInEveryPageWhateverTheThreads(t *testing.T) {
	// Sizes that are not a whole number of pieces, and thread counts above
	// the number of pieces.
	for _, n := range []int{4 << 20, 8 << 20, 8<<20 + 4096, 37 << 20} {
		for _, threads := range []int{1, 2, 3, 16} {
			t.Run(fmt.Sprintf("%d bytes, %d threads", n, threads), func(t *testing.T) {
				b := freshAnon(t, n)
				defer unix.Munmap(b)
				if r, _ := residentPages(t, b); r != 0 {
					t.Fatalf("%d pages resident before populate", r)
				}
				populate(b, threads)
				if r, p := residentPages(t, b); r != p {
					t.Fatalf("%d of %d pages resident after populate", r, p)
				}
			})
		}
	}
}

// BenchmarkPopulate faults in 256 MiB of fresh memory with one thread and
// with every thread: the prefault of one large tensor before the loader's
// workers fill it.
func BenchmarkPopulate(b *testing.B) {
	const n = 256 << 20
	for _, threads := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			b.SetBytes(n)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				m := freshAnon(b, n)
				_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
				b.StartTimer()
				populate(m, threads)
				b.StopTimer()
				_ = unix.Munmap(m)
				b.StartTimer()
			}
		})
	}
}
