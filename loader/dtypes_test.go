package loader

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

func TestDirectLoadsEveryDtypeAsMLXsOwnLoaderDoes(t *testing.T) {
	requireMLX(t)
	const rows, cols = 4, 6
	// MLX's safetensors loader (0.32) refuses these dtypes; Direct loads
	// their bytes all the same, the 8-bit floats as uint8.
	refused := map[safetensors.Dtype]mlx.Dtype{
		safetensors.F8E5M2: mlx.Uint8, safetensors.F8E4M3FNUZ: mlx.Uint8, safetensors.F8E5M2FNUZ: mlx.Uint8,
		safetensors.F64: mlx.Float64,
	}
	dtypes := []safetensors.Dtype{
		safetensors.Bool, safetensors.U8, safetensors.I8, safetensors.F8E5M2, safetensors.F8E4M3, safetensors.F8E8M0,
		safetensors.F8E4M3FNUZ, safetensors.F8E5M2FNUZ, safetensors.I16, safetensors.U16, safetensors.F16,
		safetensors.BF16, safetensors.I32, safetensors.U32, safetensors.F32, safetensors.C64, safetensors.F64,
		safetensors.I64, safetensors.U64,
	}
	// One file per dtype, so that a dtype MLX refuses does not hide the
	// others from it.
	c := newCkpt(31)
	var shards [][]safetensors.TensorData
	for _, dt := range dtypes {
		c.add("t."+dt.String(), dt, rows, cols)
		td := &c.tensors[len(c.tensors)-1]
		if dt == safetensors.Bool {
			for i := range td.Data {
				td.Data[i] &= 1
			}
		}
		shards = append(shards, []safetensors.TensorData{*td})
	}
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dir, shards, nil))
	// Every tensor split along its columns.
	rules := &RuleSet{Name: "columns", Rules: []Rule{{Pattern: rx(`^t\.`), Action: SplitAxis, Axis: 1}}}

	for n := 1; n <= 2; n++ {
		got := make([]map[string]*mlx.Array, n)
		for k := range n {
			o := bigGuard(t)
			o.Rank, o.WorldSize, o.Rules = k, n, rules
			l, err := Open(dir, o)
			require.NoError(t, err)
			got[k], err = l.LoadAll(context.Background())
			require.NoError(t, err)
			require.NoError(t, l.Close())
		}
		for i, dt := range dtypes {
			name := "t." + dt.String()
			for k := range n {
				t.Run(fmt.Sprintf("%s, rank %d of %d", dt, k, n), func(t *testing.T) {
					a := got[k][name]
					require.NotNil(t, a)
					defer a.Free()
					part := cols / n
					mine, err := a.Bytes()
					require.NoError(t, err)
					assert.Equal(t, []int{rows, part}, a.Shape())
					path := filepath.Join(dir, safetensors.ShardFileName(i+1, len(dtypes)))
					arrays, _, err := mlx.LoadSafetensors(path)
					if want, ok := refused[dt]; ok {
						require.ErrorContains(t, err, "unsupported dtype", "MLX's loader still refuses %s: update refused", dt)
						assert.Equal(t, want, a.Dtype())
						// The file's bytes, columns [k·part, (k+1)·part) of each row.
						size := dt.Size()
						var cut []byte
						for r := range rows {
							row := shards[i][0].Data[r*cols*size:]
							cut = append(cut, row[k*part*size:(k+1)*part*size]...)
						}
						assert.Equal(t, cut, mine)
						return
					}
					require.NoError(t, err)
					defer func() {
						for _, x := range arrays {
							x.Free()
						}
					}()
					whole, ok := arrays[name]
					require.True(t, ok, "MLX's loader gave %d tensors for %s: %v", len(arrays), path, slices.Collect(maps.Keys(arrays)))
					cutA, err := mlx.Slice(whole, []int{0, k * part}, []int{rows, (k + 1) * part}, nil)
					require.NoError(t, err)
					defer cutA.Free()
					want, err := cutA.Bytes()
					require.NoError(t, err)
					assert.Equal(t, whole.Dtype(), a.Dtype(), "the dtype MLX's loader gives")
					assert.Equal(t, want, mine)
				})
			}
		}
	}
	require.NoError(t, mlx.ClearCache())
}
