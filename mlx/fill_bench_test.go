package mlx

import (
	"runtime"
	"testing"
)

// BenchmarkNewArrayFill fills a fresh 64 MiB MLX array from a buffer in
// memory: with the uninitialised allocation (one write of each byte), with
// the zeroing fallback an official libmlxc gets (zeros + contiguous + eval,
// then the copy), and, as the limit, a copy into freshly made Go memory.
func BenchmarkNewArrayFill(b *testing.B) {
	if err := Load(); err != nil {
		b.Skip(err)
	}
	const n = 64 << 20
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i)
	}
	fill := func(dst []byte) error { copy(dst, src); return nil }
	run := func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			a, err := NewArrayFill([]int{n / 4}, Float32, fill)
			if err != nil {
				b.Fatal(err)
			}
			a.Free()
			// A load allocates fresh memory for every tensor: give the
			// buffer back so the next one faults its pages in anew.
			if err := ClearCache(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("uninitialized", func(b *testing.B) {
		if sym._mlx_array_new_uninitialized == 0 {
			b.Skip("the loaded library has no _mlx_array_new_uninitialized")
		}
		run(b)
	})
	b.Run("zeroing", func(b *testing.B) {
		saved := sym._mlx_array_new_uninitialized
		sym._mlx_array_new_uninitialized = 0
		defer func() { sym._mlx_array_new_uninitialized = saved }()
		run(b)
	})
	b.Run("go-make-copy", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			dst := make([]byte, n)
			copy(dst, src)
			runtime.KeepAlive(dst)
		}
	})
}
