package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the header parser and, when they are
// accepted, exercises every accessor: a file that passes validation must
// never make a later call panic or read outside the data.
func FuzzOpen(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.safetensors"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		var total int64
		for _, ti := range sf.Tensors() {
			if ti.Begin < 0 || ti.End > sf.TotalBytes() || ti.Offset+ti.Size() > int64(len(b)) {
				t.Fatalf("tensor %q [%d, %d) escapes data of %d bytes", ti.Name, ti.Begin, ti.End, sf.TotalBytes())
			}
			total += ti.Size()
			data, err := sf.Data(ti.Name)
			if err != nil || int64(len(data)) != ti.Size() {
				t.Fatalf("Data(%q): %d bytes, %v", ti.Name, len(data), err)
			}
			for axis := range ti.Shape {
				for _, n := range []int{1, 2, 3} {
					size, err := ti.PartSize(axis, n)
					if err != nil {
						continue
					}
					var got int64
					for k := range n {
						dst := make([]byte, size)
						if _, err := sf.ReadPart(ti.Name, axis, n, k, dst); err != nil {
							t.Fatalf("ReadPart(%q, %d, %d, %d): %v", ti.Name, axis, n, k, err)
						}
						got += size
					}
					if got != ti.Size() {
						t.Fatalf("parts of %q along %d hold %d bytes, want %d", ti.Name, axis, got, ti.Size())
					}
				}
			}
		}
		if total != sf.TotalBytes() {
			t.Fatalf("tensors hold %d bytes, data has %d", total, sf.TotalBytes())
		}
	})
}
