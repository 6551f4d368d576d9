package shard

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/mlxdist/mlxdist/safetensors"
)

// Tensor describes a tensor to plan: what a checkpoint's header says of it,
// or what a model described without files says.
type Tensor struct {
	Name  string
	Dtype safetensors.Dtype
	Shape []int64
	// File and Offset say where the tensor's bytes lie: the file's path and
	// the absolute position of its first byte. A model described without
	// files leaves them "" and 0.
	File   string
	Offset int64
}

// Describe returns the descriptions of a checkpoint's tensors (from
// safetensors.Dir.Tensors or File.Tensors).
func Describe(ts []safetensors.TensorInfo) []Tensor {
	out := make([]Tensor, len(ts))
	for i, t := range ts {
		out[i] = Tensor{Name: t.Name, Dtype: t.Dtype, Shape: t.Shape, File: t.File, Offset: t.Offset}
	}
	return out
}

// Size returns the tensor's size in bytes: its element count times its
// dtype's bits, over 8. It is 0 for a tensor that check refuses.
func (t Tensor) Size() int64 {
	n, _ := t.size()
	return n
}

func (t Tensor) size() (int64, error) {
	bitsPer := uint64(t.Dtype.Bits())
	if bitsPer == 0 {
		return 0, fmt.Errorf("loader: tensor %q has no dtype", t.Name)
	}
	n := bitsPer
	for _, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("loader: tensor %q has a negative dimension in its shape %v", t.Name, t.Shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 {
			return 0, fmt.Errorf("loader: tensor %q of shape %v is too large", t.Name, t.Shape)
		}
		n = lo
	}
	if n/8 > math.MaxInt64 || n%8 != 0 {
		return 0, fmt.Errorf("loader: tensor %q of shape %v %s is not a whole number of bytes", t.Name, t.Shape, t.Dtype)
	}
	return int64(n / 8), nil
}

// info is the header entry of a checked tensor, for its byte geometry.
func (t Tensor) info() safetensors.TensorInfo {
	return safetensors.TensorInfo{Name: t.Name, Dtype: t.Dtype, Shape: t.Shape, End: t.Size(), Offset: t.Offset, File: t.File}
}
