package ckptgen

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

// otherCheckpoint fills dir as another tool's checkpoint would: three shard
// files, an index and a rank stamp that claims the directory for rank 0.
func otherCheckpoint(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ts := func(name string) []safetensors.TensorData {
		return []safetensors.TensorData{{Name: name, Dtype: safetensors.U8, Shape: []int64{1}, Data: []byte{1}}}
	}
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.TensorData{ts("a"), ts("b"), ts("c")}, nil))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mlxdist-shard.json"), []byte(`{"rank":0,"world_size":2}`), 0o644))
	return readAll(t, dir)
}

func readAll(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = b
	}
	return out
}

func TestWriteRefusesADirectoryItDidNotWrite(t *testing.T) {
	dir := t.TempDir()
	before := otherCheckpoint(t, dir)
	_, err := Write(context.Background(), dir, smallLlama(), nil)
	require.ErrorIs(t, err, ErrNotEmpty)
	assert.Contains(t, err.Error(), "--force")
	assert.Equal(t, before, readAll(t, dir), "the other checkpoint was touched")
	entries, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "a temporary directory was left beside it")
}

func TestForceReplacesAnotherCheckpointLeavingNoForeignStamp(t *testing.T) {
	dir := t.TempDir()
	otherCheckpoint(t, dir)
	res := write(t, dir, smallLlama(), &Options{Force: true})
	got := readAll(t, dir)
	assert.NotContains(t, got, "mlxdist-shard.json", "a stamp it did not rewrite survived")
	assert.NotContains(t, got, safetensors.ShardFileName(3, 3))
	want := []string{safetensors.IndexName, "config.json", "tokenizer.json", "tokenizer_config.json", StampName}
	assert.Len(t, got, len(want)+len(res.Files))
	for _, name := range append(want, res.Files...) {
		assert.Contains(t, got, name)
	}
}

func TestForceStillRefusesADirectoryWithSubdirectories(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "src"), 0o755))
	_, err := Write(context.Background(), dir, smallLlama(), &Options{Force: true})
	require.ErrorIs(t, err, ErrNotEmpty)
	assert.DirExists(t, filepath.Join(dir, "src"))
}

func TestAnInterruptedRewriteKeepsTheEarlierCheckpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ckpt")
	write(t, dir, smallLlama(), &Options{Seed: 1})
	before := readAll(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Write(ctx, dir, smallLlama(), &Options{Seed: 2, Progress: func(w, _ int64) { cancel() }})
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, before, readAll(t, dir))
	entries, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "a temporary directory was left beside it")
}
