package loader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

func TestAReshardedCheckpointLoadsTheSameArraysReadingOnlyTheShard(t *testing.T) {
	requireMLX(t)
	src := kimiLike(3).write(t, 3)
	require.NoError(t, os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"model_type":"kimi_k25"}`), 0o644))
	const n = 2
	rules := DeepSeekV3Rules(4)
	for rank := range n {
		dst := filepath.Join(t.TempDir(), "rank")
		var last, total int64
		stamp, err := Reshard(context.Background(), src, dst, PlanOptions{Rank: rank, WorldSize: n, Rules: rules},
			func(done, all int64) { last, total = done, all })
		require.NoError(t, err)
		assert.Equal(t, total, last, "progress reaches the total")
		assert.Equal(t, rank, stamp.Rank)
		assert.FileExists(t, filepath.Join(dst, "config.json"), "the source's other files come along")

		// The same arrays from the full checkpoint and from the shard.
		want := loadDigests(t, src, Options{PlanOptions: PlanOptions{Rank: rank, WorldSize: n, Rules: rules}})
		o := bigGuard(t)
		o.Rank, o.WorldSize = rank, n
		l, err := Open(dst, o)
		require.NoError(t, err)
		assert.Equal(t, stamp.Bytes, l.Plan().Read, "the shard is read whole, and only the shard")
		assert.Equal(t, l.Plan().Checkpoint, l.Plan().Resident)
		got, err := l.LoadAll(context.Background())
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for name, a := range got {
			assert.Equal(t, want[name], digest(t, a), "tensor %s rank %d", name, rank)
			a.Free()
		}
		require.NoError(t, l.Close())

		d, err := safetensors.OpenDir(dst)
		require.NoError(t, err)
		assert.Equal(t, stamp.Bytes, d.TotalBytes(), "the files hold exactly the shard")
		require.NoError(t, d.Close())

		// Another rank, or another world size, is refused.
		o.Rank = 1 - rank
		_, err = Open(dst, o)
		assert.True(t, errors.Is(err, ErrShardMismatch), "%v", err)
		o.Rank, o.WorldSize = 0, 4
		_, err = Open(dst, o)
		assert.ErrorIs(t, err, ErrShardMismatch)
		_, err = Reshard(context.Background(), dst, t.TempDir(), PlanOptions{Rank: 0, WorldSize: 2, Rules: rules}, nil)
		assert.ErrorContains(t, err, "already rank")
	}
}

func TestReshardStopsOnACancelledContextWithoutAStamp(t *testing.T) {
	src := kimiLike(4).write(t, 2)
	dst := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Reshard(ctx, src, dst, PlanOptions{Rank: 0, WorldSize: 2, Rules: DeepSeekV3Rules(4)}, nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NoFileExists(t, filepath.Join(dst, ShardStampName))
}

func loadDigests(t *testing.T, dir string, o Options) map[string]string {
	t.Helper()
	o.Guard = bigGuard(t).Guard
	l, err := Open(dir, o)
	require.NoError(t, err)
	defer l.Close()
	arrays, err := l.LoadAll(context.Background())
	require.NoError(t, err)
	out := map[string]string{}
	for name, a := range arrays {
		out[name] = digest(t, a)
		a.Free()
	}
	require.NoError(t, mlx.ClearCache())
	return out
}
