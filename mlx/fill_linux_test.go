package mlx

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mlxdist/mlxdist/internal/testenv"
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

func TestPopulateFaultsInEveryPageWhateverTheThreads(t *testing.T) {
	// Sizes that are not a whole number of pieces, and thread counts above
	// the number of pieces.
	for _, n := range []int{4 << 20, 8 << 20, 8<<20 + 4096, 37 << 20} {
		for _, threads := range []int{1, 2, 3, 16} {
			t.Run(fmt.Sprintf("%d bytes, %d threads", n, threads), func(t *testing.T) {
				b := freshAnon(t, n)
				defer unix.Munmap(b)
				if r, _ := testenv.ResidentPages(t, b); r != 0 {
					t.Fatalf("%d pages resident before populate", r)
				}
				populate(b, threads)
				if r, p := testenv.ResidentPages(t, b); r != p {
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

// uninitialisedResident allocates n bytes of MLX memory without touching
// them and returns how many of their pages are resident already.
func uninitialisedResident(t *testing.T, n int) (resident, pages int) {
	t.Helper()
	shape := byteShape(int64(n))
	a, ptr, err := newUninitializedAnyThread(cInts(shape), shape, Uint8, n)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Free()
	return testenv.ResidentPages(t, unsafe.Slice((*byte)(cPtr(ptr)), n))
}

func TestPrefaultCacheGivesTheNextAllocationOfASizeFaultedInMemory(t *testing.T) {
	loadOrSkip(t)
	if sym._mlx_array_new_uninitialized == 0 {
		t.Skip("the loaded library has no _mlx_array_new_uninitialized")
	}
	// Above MLX's default cache limit (32 MB), so that restoring it must
	// give the memory back.
	const n = 40 << 20
	if err := ClearCache(); err != nil {
		t.Fatal(err)
	}
	// Without it, fresh memory: no page is there before the first write.
	if r, p := uninitialisedResident(t, n); r > p/8 {
		t.Fatalf("%d of %d pages of a fresh allocation resident: the check below proves nothing", r, p)
	}
	if err := ClearCache(); err != nil {
		t.Fatal(err)
	}
	active0, _ := ActiveMemory()
	cache0, _ := CacheMemory()
	restore, err := PrefaultCache([]int64{n, 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	active, _ := ActiveMemory()
	cache, _ := CacheMemory()
	if active != active0 || cache-cache0 != n {
		t.Fatalf("after PrefaultCache: active %d (was %d), cache %d (was %d); want the same active and %d more cache (sizes under 2 MiB ignored)",
			active, active0, cache, cache0, n)
	}
	if r, p := uninitialisedResident(t, n); r != p {
		t.Fatalf("%d of %d pages resident in the next allocation of the size", r, p)
	}
	// Freed into the cache again, and given back by restore.
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	limit, err := SetCacheLimit(32 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SetCacheLimit(limit); err != nil {
		t.Fatal(err)
	}
	cache, _ = CacheMemory()
	if cache > limit {
		t.Fatalf("after restore: cache limit %d, %d bytes cached", limit, cache)
	}
}

func TestByteShapesFitInt32(t *testing.T) {
	for _, n := range []int64{1, math.MaxInt32, math.MaxInt32 + 1, 3 << 40, 6 << 30} {
		s := byteShape(n)
		if s == nil {
			t.Fatalf("%d: no shape", n)
		}
		prod := int64(1)
		for _, d := range s {
			if d > math.MaxInt32 {
				t.Fatalf("%d: dimension %d of %v over int32", n, d, s)
			}
			prod *= int64(d)
		}
		if prod != n {
			t.Fatalf("%d: shape %v holds %d", n, s, prod)
		}
	}
	if s := byteShape(1<<31 + 1); s != nil {
		t.Fatalf("an odd size over int32 got %v", s)
	}
}
