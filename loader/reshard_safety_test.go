package loader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/safetensors"
)

// treeDigest maps every file under dir to its mode and content hash.
func treeDigest(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[rel] = fi.Mode().String() + " " + hex.EncodeToString(sum[:])
		return nil
	}))
	return out
}

// sourceWithFiles is a small sharded checkpoint with the side files a real
// one has.
func sourceWithFiles(t *testing.T) string {
	t.Helper()
	src := kimiLike(7).write(t, 2)
	for _, name := range []string{"config.json", "tokenizer.json", "tokenizer_config.json"} {
		require.NoError(t, os.WriteFile(filepath.Join(src, name), []byte(`{"model_type":"kimi_k25"}`), 0o644))
	}
	return src
}

var twoRanks = PlanOptions{Rank: 0, WorldSize: 2, Rules: DeepSeekV3Rules(4)}

func TestReshardRefusesAnOutputThatResolvesToTheSource(t *testing.T) {
	cases := []struct {
		name string
		out  func(t *testing.T, src string) string
	}{
		{"the source itself", func(t *testing.T, src string) string { return src }},
		{"the source with a trailing slash", func(t *testing.T, src string) string { return src + "/" }},
		{"the source through dot-dot", func(t *testing.T, src string) string {
			return filepath.Join(src, "..", filepath.Base(src))
		}},
		{"a link to the source", func(t *testing.T, src string) string {
			l := filepath.Join(t.TempDir(), "link")
			require.NoError(t, os.Symlink(src, l))
			return l
		}},
		{"a new directory inside the source", func(t *testing.T, src string) string { return filepath.Join(src, "rank0") }},
		{"the directory that holds the source", func(t *testing.T, src string) string { return filepath.Dir(src) }},
		{"a bind mount of the source", bindMount},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := sourceWithFiles(t)
			out := c.out(t, src)
			before := treeDigest(t, src)
			_, err := Reshard(context.Background(), src, out, twoRanks, nil)
			require.ErrorIs(t, err, ErrUnsafeOutput)
			assert.Contains(t, err.Error(), "choose a directory outside the source")
			assert.Equal(t, before, treeDigest(t, src), "the source changed")
		})
	}
}

func TestReshardRefusesADirectoryOfFilesItDidNotWrite(t *testing.T) {
	src := sourceWithFiles(t)
	out := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644))
	before := treeDigest(t, out)
	_, err := Reshard(context.Background(), src, out, twoRanks, nil)
	require.ErrorIs(t, err, ErrUnsafeOutput)
	assert.Equal(t, before, treeDigest(t, out))
}

func TestReshardReplacesItsOwnEarlierOutputWhole(t *testing.T) {
	src := sourceWithFiles(t)
	out := filepath.Join(t.TempDir(), "rank")
	_, err := Reshard(context.Background(), src, out, PlanOptions{Rank: 1, WorldSize: 2, Rules: DeepSeekV3Rules(4)}, nil)
	require.NoError(t, err)
	st, err := Reshard(context.Background(), src, out, twoRanks, nil)
	require.NoError(t, err)
	assert.Equal(t, 0, st.Rank)
	s, err := ReadShardStamp(out)
	require.NoError(t, err)
	assert.Equal(t, 0, s.Rank)
	entries, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "temporary or old directories were left beside the output")
}

func TestAFailedReshardLeavesNothingBehind(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, src string) (out string, ctx context.Context)
		is    error
	}{
		{"a full disk", func(t *testing.T, src string) (string, context.Context) {
			disk := testenv.SmallDisk(t, 96<<10)
			return filepath.Join(disk, "rank0"), context.Background()
		}, syscall.ENOSPC},
		{"a source file truncated while it is read", func(t *testing.T, src string) (string, context.Context) {
			return filepath.Join(t.TempDir(), "rank0"), context.Background()
		}, nil},
		{"a cancelled context", func(t *testing.T, src string) (string, context.Context) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return filepath.Join(t.TempDir(), "rank0"), ctx
		}, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := sourceWithFiles(t)
			out, ctx := c.setup(t, src)
			// The second shard file is cut to its header once the first
			// tensor is written, as another process might do mid-run.
			second := filepath.Join(src, safetensors.ShardFileName(2, 2))
			var cut bool
			progress := func(done, total int64) {
				if !cut && c.is == nil {
					cut = true
					require.NoError(t, os.Truncate(second, 64))
				}
			}
			_, err := Reshard(ctx, src, out, twoRanks, progress)
			if c.is != nil {
				require.ErrorIs(t, err, c.is)
			} else {
				require.True(t, cut)
				var le *LoadError
				require.ErrorAs(t, err, &le)
				assert.Equal(t, second, le.File)
			}
			entries, rerr := os.ReadDir(filepath.Dir(out))
			require.NoError(t, rerr)
			assert.Empty(t, entries, "a failed reshard left %v", entries)
		})
	}
}

func TestAFailedReshardKeepsTheEarlierOutput(t *testing.T) {
	src := sourceWithFiles(t)
	out := filepath.Join(t.TempDir(), "rank")
	_, err := Reshard(context.Background(), src, out, twoRanks, nil)
	require.NoError(t, err)
	before := treeDigest(t, out)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Reshard(ctx, src, out, PlanOptions{Rank: 1, WorldSize: 2, Rules: DeepSeekV3Rules(4)}, nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, before, treeDigest(t, out))
}

func TestReshardedFilesWithoutTheirStampDoNotLoad(t *testing.T) {
	src := sourceWithFiles(t)
	out := filepath.Join(t.TempDir(), "rank")
	_, err := Reshard(context.Background(), src, out, twoRanks, nil)
	require.NoError(t, err)
	o := bigGuard(t)
	o.Rank, o.WorldSize = 0, 2

	t.Run("a stamp removed", func(t *testing.T) {
		dir := copyTree(t, out)
		require.NoError(t, os.Remove(filepath.Join(dir, ShardStampName)))
		_, err := Open(dir, o)
		require.ErrorIs(t, err, ErrUnstampedShard)
		assert.Contains(t, err.Error(), "run reshard again")
	})
	t.Run("no index and no stamp", func(t *testing.T) {
		dir := copyTree(t, out)
		require.NoError(t, os.Remove(filepath.Join(dir, ShardStampName)))
		require.NoError(t, os.Remove(filepath.Join(dir, safetensors.IndexName)))
		_, err := Open(dir, o)
		require.ErrorIs(t, err, ErrUnstampedShard)
	})
	t.Run("an index that lists a missing file", func(t *testing.T) {
		dir := copyTree(t, src)
		require.NoError(t, os.Remove(filepath.Join(dir, safetensors.ShardFileName(1, 2))))
		_, err := Open(dir, o)
		require.ErrorIs(t, err, safetensors.ErrFormat)
		assert.Contains(t, err.Error(), "the checkpoint is incomplete")
	})
}

func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "copy")
	require.NoError(t, os.CopyFS(to, os.DirFS(from)))
	return to
}
