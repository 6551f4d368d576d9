package loader

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// TestTheFilesCountWhatADirectLoadCopiesOnce loads every rank's shard of a
// checkpoint whose tensors are split in every way (rows, columns, stacked
// experts, quantized triplets, replicated) and checks that the checkpoint's
// BytesRead grows by exactly what the loader copied: the plan's Read, each
// byte once, not the whole of every split tensor.
func TestTheFilesCountWhatADirectLoadCopiesOnce(t *testing.T) {
	requireMLX(t)
	dir := kimiLike(5).write(t, 2)
	const n = 2
	for _, mode := range []ReadMode{ReadAuto, ReadMmap, ReadPread} {
		for rank := range n {
			t.Run(fmt.Sprintf("%s rank %d", mode, rank), func(t *testing.T) {
				d, err := safetensors.OpenDir(dir)
				require.NoError(t, err)
				defer d.Close()
				o := bigGuard(t)
				o.Rank, o.WorldSize, o.Rules, o.Read = rank, n, DeepSeekV3Rules(4), mode
				l, err := New(d, o)
				require.NoError(t, err)
				got, err := l.LoadAll(context.Background())
				require.NoError(t, err)
				for _, a := range got {
					a.Free()
				}
				require.NoError(t, mlx.ClearCache())
				assert.Equal(t, l.BytesRead(), d.BytesRead(), "the files count what the loader read")
				if mode == ReadPread {
					// Short runs are read in windows they fill at least half of.
					assert.GreaterOrEqual(t, d.BytesRead(), l.Plan().Read)
				} else {
					assert.Equal(t, l.Plan().Read, d.BytesRead(), "each byte of the shard is read once")
				}
				assert.Less(t, d.BytesRead(), l.Plan().Checkpoint, "a rank reads less than the checkpoint")
			})
		}
	}
}
