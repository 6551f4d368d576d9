package shard

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

func TestADescriptionThatIsNoTensorIsAOneLineError(t *testing.T) {
	for _, c := range []struct {
		name string
		t    Tensor
		want string
	}{
		{"a negative dimension", Tensor{Name: "w", Dtype: safetensors.BF16, Shape: []int64{4, -2}}, "negative dimension"},
		{"no dtype", Tensor{Name: "w", Shape: []int64{4}}, "has no dtype"},
		{"a shape too large to count", Tensor{Name: "w", Dtype: safetensors.F64, Shape: []int64{1 << 40, 1 << 40}}, "too large"},
		{"a part of a byte", Tensor{Name: "w", Dtype: safetensors.F4, Shape: []int64{3}}, "whole number of bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewPlan([]Tensor{c.t}, PlanOptions{WorldSize: 2})
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestDescribedAndHeaderTensorsPlanAlike(t *testing.T) {
	// The sizes a plan counts come from dtype and shape; the file's
	// position only moves the ranges.
	infos := []safetensors.TensorInfo{
		{Name: "model.layers.0.mlp.down_proj.weight", Dtype: safetensors.BF16, Shape: []int64{8, 16}, Begin: 0, End: 256, Offset: 1000, File: "a"},
		{Name: "model.norm.weight", Dtype: safetensors.F32, Shape: []int64{8}, Begin: 256, End: 288, Offset: 1256, File: "a"},
	}
	p, err := NewPlan(Describe(infos), PlanOptions{WorldSize: 2, Rank: 1})
	require.NoError(t, err)
	assert.Equal(t, int64(288), p.Checkpoint)
	assert.Equal(t, int64(128+32), p.Read)
	var down *TensorPlan
	for i := range p.Sections {
		for j := range p.Sections[i].Tensors {
			if tp := &p.Sections[i].Tensors[j]; tp.Name == infos[0].Name {
				down = tp
			}
		}
	}
	require.NotNil(t, down)
	assert.Equal(t, "a", down.File)
	var first safetensors.Range
	for r := range p.Ranges(down) {
		first = r
		break
	}
	// Rank 1 keeps columns 8-15 of row 0: bytes 16-31 of the tensor.
	assert.Equal(t, safetensors.Range{Offset: 1016, Length: 16}, first)
}
