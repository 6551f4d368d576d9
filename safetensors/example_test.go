package safetensors_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mlxdist/mlxdist/safetensors"
)

func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	// Two rows of four bytes: "abcd" and "efgh".
	err := safetensors.WriteFile(path, []safetensors.TensorData{
		{Name: "w", Dtype: safetensors.U8, Shape: []int64{2, 4}, Data: []byte("abcdefgh")},
	}, map[string]string{"format": "pt"})
	if err != nil {
		panic(err)
	}

	f, err := safetensors.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	t, _ := f.Tensor("w")
	fmt.Println(t.Name, t.Dtype, t.Shape, t.Size(), f.Metadata()["format"])

	// Rank 1 of 2 splitting the last axis gets the second half of each row.
	rs, _ := t.PartRanges(1, 2, 1)
	fmt.Println(len(rs), "ranges")
	part := make([]byte, 4)
	f.ReadPart("w", 1, 2, 1, part)
	fmt.Println(string(part))
	// Output:
	// w U8 [2 4] 8 pt
	// 2 ranges
	// cdgh
}

func ExampleOpenDir() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	u8 := func(name string, b string) safetensors.TensorData {
		return safetensors.TensorData{Name: name, Dtype: safetensors.U8, Shape: []int64{int64(len(b))}, Data: []byte(b)}
	}
	safetensors.WriteDir(dir, [][]safetensors.TensorData{
		{u8("layers.0.w", "ab")},
		{u8("layers.1.w", "cdef")},
	}, nil)

	ckpt, err := safetensors.OpenDir(dir)
	if err != nil {
		panic(err)
	}
	defer ckpt.Close()
	for _, t := range ckpt.Tensors() {
		fmt.Println(t.Name, filepath.Base(t.File), t.Size())
	}
	fmt.Println(ckpt.TotalBytes(), "bytes in", len(ckpt.Files()), "files")
	// Output:
	// layers.0.w model-00001-of-00002.safetensors 2
	// layers.1.w model-00002-of-00002.safetensors 4
	// 6 bytes in 2 files
}

func ExampleFormatError() {
	// A header that promises 4 bytes of "w" over 2 bytes of data.
	hdr := `{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`
	b := append([]byte{byte(len(hdr)), 0, 0, 0, 0, 0, 0, 0}, hdr+"ab"...)
	_, err := safetensors.NewReader(bytes.NewReader(b), int64(len(b)))
	fmt.Println(err)
	fmt.Println(errors.Is(err, safetensors.ErrFormat))
	var fe *safetensors.FormatError
	if errors.As(err, &fe) {
		fmt.Println(fe.Reason, fe.Tensor)
	}
	// Output:
	// safetensors: tensor "w" ends at 4 past data end 2
	// true
	// past-end w
}
