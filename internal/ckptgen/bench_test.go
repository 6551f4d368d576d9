package ckptgen

import (
	"context"
	"testing"
)

func BenchmarkFill(b *testing.B) {
	for _, tc := range []struct {
		name string
		desc TensorDesc
	}{
		{"packed U32", TensorDesc{Name: "w.weight", Dtype: "U32"}},
		{"BF16 scales", TensorDesc{Name: "w.scales", Dtype: "BF16"}},
		{"F32 bias", TensorDesc{Name: "gate.e_score_correction_bias", Dtype: "F32"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, chunkSize)
			f := newFiller(1, tc.desc)
			b.SetBytes(chunkSize)
			for b.Loop() {
				f.fill(buf)
			}
		})
	}
}

// BenchmarkWrite writes a 1/8-width Kimi K2.5 with 3 layers and 16 experts
// (about 190 MB): generation plus the file system.
func BenchmarkWrite(b *testing.B) {
	s := KimiK25().Scale(1.0 / 8)
	s.Layers, s.Experts, s.Files = 3, 16, 4
	dir := b.TempDir()
	b.SetBytes(s.Sum(s.Tensors()).Bytes)
	for b.Loop() {
		if _, err := Write(context.Background(), dir, s, &Options{Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}
