package ckptgen_test

import (
	"fmt"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/units"
)

func ExampleKimiK25() {
	s := ckptgen.KimiK25()
	sum := s.Sum(s.Tensors())
	fmt.Println(sum.Tensors, "tensors,", units.FormatGB(sum.Bytes), "in", s.Files, "files")

	small := s.Scale(1.0 / 16)
	small.Layers, small.Experts, small.Files = 3, 8, 2
	fmt.Println("hidden", small.Hidden, "heads", small.Heads, "size", units.FormatGB(small.Sum(small.Tensors()).Bytes))
	// Output:
	// 2893 tensors, 578.54 GB in 182 files
	// hidden 448 heads 4 size 0.01 GB
}
