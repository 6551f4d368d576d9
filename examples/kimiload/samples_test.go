//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEveryRankSamplesItsMemoryDuringTheLoad loads with --samples and
// --read map on two ranks and checks each rank's file: samples in time
// order, from before the first array to the loaded shard, which the last
// sample holds in MLX's active memory, within the load's wall time.
func TestEveryRankSamplesItsMemoryDuringTheLoad(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	r := runCmd(t, nil, launchBin, "-n", "2", "--", kimiBin, "--model", ckptDir, "--json", "--read", "map",
		"--samples", filepath.Join(dir, "mem.r{rank}.jsonl"))
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	j := parseJob(t, r.stdout)
	require.Len(t, j.PerRank, 2)
	for _, f := range j.PerRank {
		file, err := os.Open(filepath.Join(dir, "mem.r"+strconv.Itoa(f.Rank)+".jsonl"))
		require.NoError(t, err)
		var ss []sample
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			var s sample
			require.NoError(t, json.Unmarshal(sc.Bytes(), &s), "line %q", sc.Text())
			ss = append(ss, s)
		}
		require.NoError(t, file.Close())
		require.GreaterOrEqual(t, len(ss), 2, "rank %d: at least the first and the last sample", f.Rank)
		for i := 1; i < len(ss); i++ {
			assert.GreaterOrEqual(t, ss[i].T, ss[i-1].T, "rank %d: samples in time order", f.Rank)
		}
		assert.Less(t, ss[0].Active, f.Shard, "rank %d: the first sample comes before the shard is loaded", f.Rank)
		last := ss[len(ss)-1]
		assert.GreaterOrEqual(t, last.Active, f.Shard, "rank %d: the last sample holds the shard", f.Rank)
		assert.LessOrEqual(t, last.T, f.LoadS+1, "rank %d: sampling stops with the load", f.Rank)
		if _, err := os.Stat("/proc/self/status"); err == nil {
			assert.Positive(t, last.RSS, "rank %d: the resident size is sampled where /proc has it", f.Rank)
		}
	}
}
