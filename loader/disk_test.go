package loader

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mlxdist/mlxdist/safetensors"
)

func TestDiskCountsThePagesARanksRunsTouch(t *testing.T) {
	const page = 4096
	plain := func(dim int64) Split { return Split{Action: ShardedToAll, Axis: 0, Bounds: []int64{0, dim}} }
	last := func(dim int64) Split { return Split{Action: ShardedToAll, Axis: 1, Bounds: []int64{0, dim}} }
	for _, tc := range []struct {
		name  string
		shape []int64
		split Split
		k     int
		want  int64
	}{
		{"a replicated tensor reads its pages", []int64{10000}, Split{Axis: -1}, 0, 3 * page},
		{"a leading-axis half is one run of its own pages", []int64{8, 1024}, plain(8), 1, page},
		{"half of every 1 KB row touches every page", []int64{64, 1024}, last(1024), 0, 16 * page},
		{"runs a page or more apart touch only their own pages", []int64{4, 16384}, last(16384), 1, 8 * page},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(1)
			for _, d := range tc.shape {
				size *= d
			}
			tp := TensorPlan{Name: "w", DType: safetensors.U8, Shape: tc.shape, Split: tc.split, Bytes: size,
				info: safetensors.TensorInfo{Name: "w", DType: safetensors.U8, Shape: tc.shape, End: size}}
			assert.Equal(t, tc.want, diskBytes(&tp, 2, tc.k, page))
		})
	}
}
