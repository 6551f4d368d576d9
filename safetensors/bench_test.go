package safetensors

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkOpenDir opens a checkpoint shaped like a large model's: 182
// shard files holding 100,000 tensors in all (tiny ones: opening reads
// headers only, so their size does not matter).
func BenchmarkOpenDir(b *testing.B) {
	const files, tensors = 182, 100_000
	dir := b.TempDir()
	shards := make([][]TensorData, files)
	data := make([]byte, 8)
	for i := range tensors {
		name := fmt.Sprintf("model.layers.%d.mlp.experts.%d.down_proj.weight", i/1000, i%1000)
		shards[i%files] = append(shards[i%files], TensorData{name, BF16, []int64{2, 2}, data})
	}
	if err := WriteDir(dir, shards, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		d, err := OpenDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		if d.Len() != tensors {
			b.Fatalf("%d tensors", d.Len())
		}
		d.Close()
	}
}

// BenchmarkCopy compares copying a warm 64 MB tensor out of the mapping,
// whole and as a rank's half split on the last axis (8192 strided runs of
// 4 KB), with a plain copy() between two heap buffers of the same size.
func BenchmarkCopy(b *testing.B) {
	const rows, cols = 8192, 4096 // BF16: 64 MiB
	path := filepath.Join(b.TempDir(), "big.safetensors")
	src := make([]byte, rows*cols*2)
	for i := range src {
		src[i] = byte(i * 7)
	}
	if err := WriteFile(path, []TensorData{{"w", BF16, []int64{rows, cols}, src}}, nil); err != nil {
		b.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	whole := make([]byte, len(src))
	half := make([]byte, len(src)/2)
	warm := func(b *testing.B) {
		if _, err := f.ReadPart("w", 0, 1, 0, whole); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("memcpy-whole", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			copy(whole, src)
		}
	})
	b.Run("mmap-whole", func(b *testing.B) {
		warm(b)
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := f.ReadPart("w", 0, 1, 0, whole); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pread-whole", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if _, err := readPartMode(f, "w", 0, 1, 0, whole, ReadPread); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memcpy-half", func(b *testing.B) {
		b.SetBytes(int64(len(half)))
		for b.Loop() {
			copy(half, src[:len(half)])
		}
	})
	b.Run("mmap-lastaxis-half", func(b *testing.B) {
		warm(b)
		b.SetBytes(int64(len(half)))
		for b.Loop() {
			if _, err := f.ReadPart("w", 1, 2, 1, half); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pread-lastaxis-half", func(b *testing.B) {
		b.SetBytes(int64(len(half)))
		for b.Loop() {
			if _, err := readPartMode(f, "w", 1, 2, 1, half, ReadPread); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A quantized expert's down projection split on its last axis: rows
	// of 256 packed uint32 words, so 512-byte runs, 65536 of them.
	q := filepath.Join(b.TempDir(), "q.safetensors")
	if err := WriteFile(q, []TensorData{{"q", U32, []int64{rows * cols * 2 / 1024, 256}, src}}, nil); err != nil {
		b.Fatal(err)
	}
	fq, err := Open(q)
	if err != nil {
		b.Fatal(err)
	}
	defer fq.Close()
	if _, err := fq.ReadPart("q", 0, 1, 0, whole); err != nil {
		b.Fatal(err)
	}
	b.Run("mmap-lastaxis-half-512B-runs", func(b *testing.B) {
		b.SetBytes(int64(len(half)))
		for b.Loop() {
			if _, err := fq.ReadPart("q", 1, 2, 1, half); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same two strided copies into memory 8 bytes past a 16-byte
	// boundary, where MLX's CPU allocator puts an array's data.
	off8 := make([]byte, len(half)+8)[8:]
	for _, c := range []struct {
		name string
		f    *File
		t    string
	}{{"mmap-lastaxis-half-dst8", f, "w"}, {"mmap-lastaxis-half-512B-runs-dst8", fq, "q"}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(off8)))
			for b.Loop() {
				if _, err := c.f.ReadPart(c.t, 1, 2, 1, off8); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
