package loader

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

func TestAPlanThatCannotSplitManyTensorsSaysSoInOneLine(t *testing.T) {
	c := kimiLike(9)
	var infos []safetensors.TensorInfo
	for _, td := range c.tensors {
		infos = append(infos, safetensors.TensorInfo{Name: td.Name, Dtype: td.Dtype, Shape: td.Shape, End: int64(len(td.Data))})
	}
	_, err := NewPlan(infos, PlanOptions{Rank: 0, WorldSize: 3, Rules: DeepSeekV3Rules(4)})
	require.Error(t, err)
	var all *ShardErrors
	require.True(t, errors.As(err, &all), "%v", err)
	require.Greater(t, len(all.Errs), 4)
	msg := err.Error()
	assert.NotContains(t, msg, "\n")
	assert.Less(t, len(msg), 600, msg)
	assert.Contains(t, msg, "more")
	assert.True(t, strings.HasPrefix(msg, "loader: "), msg)
	// Every tensor is still there for a caller that wants them all.
	var se *ShardError
	assert.True(t, errors.As(err, &se))
	assert.ErrorIs(t, err, ErrShard)
	for _, e := range all.Errs {
		assert.Equal(t, 3, e.N)
	}
}

func TestATensorMLXDoesNotListSaysWhy(t *testing.T) {
	r := &run{listed: map[string]int{"/m/a.safetensors": 329}, taken: map[string]string{"w1": "layers.0"}}
	err := r.notInFile("w1", "/m/a.safetensors")
	assert.ErrorIs(t, err, errNotInFile)
	assert.ErrorContains(t, err, "section layers.0 already took it")
	err = r.notInFile("w2", "/m/a.safetensors")
	assert.ErrorIs(t, err, errNotInFile)
	assert.ErrorContains(t, err, "MLX's loader listed 329 tensors in it")
}
