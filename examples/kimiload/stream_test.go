package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStreamLoadsARankThatHasNoCheckpoint(t *testing.T) {
	setup(t)
	root := t.TempDir()
	require.NoError(t, os.Symlink(ckptDir, filepath.Join(root, "m0")))
	model := filepath.Join(root, "m{rank}")
	cache := filepath.Join(t.TempDir(), "cache{rank}")

	r := runCmd(t, nil, launchBin, "-n", "2", "--", kimiBin, "--model", model)
	assert.NotEqual(t, 0, r.code, "without --stream a missing checkpoint must stay an error:\n%s", r.stdout)
	assert.Contains(t, r.stdout+r.stderr, filepath.Join(root, "m1"))

	r = runCmd(t, nil, launchBin, "-n", "2", "--", kimiBin, "--model", model, "--stream", "--verify", "--json", "--cache", cache)
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "[0] [Rank 0/2] streaming: sources [0], receivers [1]")
	assert.Contains(t, r.stdout, "[1] [Rank 1/2] verify PASS: ")
	assert.Contains(t, r.stdout, "[0] [Rank 0/2] verify PASS: ")
	assert.Regexp(t, `\[0\]   streamed in / out over the group\s+0\.00 GB / \d+\.\d\d GB\s+\d+\.\d\d GB / 0\.00 GB`, r.stdout)
	j := parseJob(t, r.stdout)
	require.Len(t, j.PerRank, 2)
	src, dst := j.PerRank[0], j.PerRank[1]
	assert.Equal(t, 1, src.Verified)
	assert.Equal(t, 1, dst.Verified)
	assert.Equal(t, src.Shard, src.BytesRead, "the source reads its own shard through the loader")
	assert.Zero(t, dst.BytesRead, "the receiver reads no file")
	assert.Equal(t, dst.Shard, dst.Received, "the receiver gets exactly its shard")
	assert.Equal(t, dst.Shard, src.Sent, "only the receiver's bytes cross the link")
	assert.LessOrEqual(t, float64(dst.Peak), float64(dst.Shard)*1.01, "receiver MLX peak / shard")
	assert.Zero(t, dst.AfterFree)

	// The cache is rank 1's own shard: the next load reads it locally.
	require.NoError(t, os.Symlink(strings.ReplaceAll(cache, "{rank}", "1"), filepath.Join(root, "m1")))
	r = runCmd(t, nil, launchBin, "-n", "2", "--", kimiBin, "--model", model, "--verify", "--json")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	j = parseJob(t, r.stdout)
	require.Len(t, j.PerRank, 2)
	assert.Equal(t, dst.Shard, j.PerRank[1].BytesRead, "rank 1 reads exactly its bytes from its cache")
	assert.Equal(t, dst.Arrays, j.PerRank[1].Arrays)
}
