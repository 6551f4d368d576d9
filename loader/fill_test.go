package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

func TestAnyPieceOfAPartVisitsTheBytesTheWholePartDoes(t *testing.T) {
	rules := &RuleSet{Rules: []Rule{
		{Pattern: regexp.MustCompile("qkv"), Action: AllToSharded, Segments: []int64{2, 1, 1}},
		{Pattern: regexp.MustCompile("down"), Action: ShardedToAll},
	}}
	cases := []struct {
		name  string
		info  safetensors.TensorInfo
		n, k  int
		piece []int64
	}{
		{"a fused projection split on its rows", info("layers.0.qkv.weight", safetensors.U8, 16, 6), 2, 1, []int64{1, 5, 7, 48}},
		{"a matrix split on its last axis", info("layers.0.down.weight", safetensors.BF16, 12, 8), 4, 2, []int64{1, 3, 8, 50}},
		{"a replicated norm", info("model.norm.weight", safetensors.F32, 10), 2, 0, []int64{1, 7, 40}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := NewPlan([]safetensors.TensorInfo{c.info}, PlanOptions{WorldSize: c.n, Rank: c.k, Rules: rules})
			require.NoError(t, err)
			tp := p.Sections[0].Tensors[0]
			l := tp.layout(c.n, c.k)
			require.Equal(t, tp.ShardBytes, l.size())
			// The file offset of every byte of the part, from the whole
			// part's runs.
			var want []int64
			require.NoError(t, tp.runs(c.n, c.k, func(off, n int64) error {
				for i := range n {
					want = append(want, off+i)
				}
				return nil
			}))
			require.Len(t, want, int(l.size()))
			for _, size := range c.piece {
				got := make([]int64, l.size())
				for p0 := int64(0); p0 < l.size(); p0 += size {
					require.NoError(t, l.visit(p0, min(l.size(), p0+size), func(off, n, pos int64) error {
						assert.GreaterOrEqual(t, pos, p0, "a run starts inside its piece")
						assert.LessOrEqual(t, pos+n, p0+size, "a run ends inside its piece")
						for i := range n {
							got[pos+i] = off + i
						}
						return nil
					}))
				}
				assert.Equal(t, want, got, "pieces of %d bytes", size)
			}
		})
	}
}

// TestLargePartsFilledByManyWorkersEqualTheirSlicesOfTheFiles loads parts
// of several pieces (axis-0 splits one byte range each, last-axis splits
// thousands of short runs) with one worker and with four, in every read
// mode, and checks each array against numpy's split of the file bytes.
func TestLargePartsFilledByManyWorkersEqualTheirSlicesOfTheFiles(t *testing.T) {
	requireMLX(t)
	// gate/up/down are 32 MiB each: a rank's part of two is 2 pieces.
	dir := llamaLike(5, 1024, 16384, 1, 2048).write(t, 2)
	cases := []struct {
		n, workers int
		mode       ReadMode
	}{
		{2, 4, ReadAuto}, {2, 4, ReadPread}, {2, 4, ReadMmap}, {2, 4, ReadMap}, {2, 1, ReadAuto},
		{1, 4, ReadAuto}, {1, 4, ReadMap},
	}
	want := map[int]map[string][]string{}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d ranks, %s, %d workers", c.n, c.mode, c.workers), func(t *testing.T) {
			for rank := range c.n {
				o := bigGuard(t)
				o.Rank, o.WorldSize, o.Rules, o.Read, o.Workers = rank, c.n, LlamaRules(8, 4), c.mode, c.workers
				start, err := mlx.ActiveMemory()
				require.NoError(t, err)
				l, err := Open(dir, o)
				require.NoError(t, err)
				if want[c.n] == nil {
					want[c.n] = expectedShards(t, dir, l.Plan())
				}
				got, err := l.LoadAll(context.Background())
				require.NoError(t, err)
				require.Len(t, got, len(want[c.n]))
				if c.mode == ReadPread {
					// Short runs are read in windows they fill at least half of.
					assert.GreaterOrEqual(t, l.BytesRead(), l.Plan().Read)
					assert.LessOrEqual(t, l.BytesRead(), 2*l.Plan().Read)
				} else {
					assert.Equal(t, l.Plan().Read, l.BytesRead(), "the bytes read are the plan's")
				}
				for name, a := range got {
					assert.Equal(t, want[c.n][name][rank], digest(t, a), "tensor %s rank %d", name, rank)
					a.Free()
				}
				require.NoError(t, l.Close())
				require.NoError(t, mlx.ClearCache())
				end, err := mlx.ActiveMemory()
				require.NoError(t, err)
				assert.Equal(t, start, end, "MLX memory left behind")
			}
		})
	}
}

// TestMapModeLoadsAReshardedCheckpointAndUnmapsEveryPart loads a rank's
// resharded checkpoint (every part one byte range) in map mode, compares it
// with the copy of the same parts, and checks that once the arrays are
// freed and the files closed no mapping of the shard files is left.
func TestMapModeLoadsAReshardedCheckpointAndUnmapsEveryPart(t *testing.T) {
	requireMLX(t)
	src := kimiLike(4).write(t, 3)
	const n = 2
	rules := DeepSeekV3Rules(4)
	for rank := range n {
		dst := filepath.Join(t.TempDir(), "rank")
		_, err := Reshard(context.Background(), src, dst, PlanOptions{Rank: rank, WorldSize: n, Rules: rules}, nil)
		require.NoError(t, err)
		want := loadDigests(t, src, Options{PlanOptions: PlanOptions{Rank: rank, WorldSize: n, Rules: rules}})
		o := bigGuard(t)
		o.Rank, o.WorldSize, o.Read, o.Workers = rank, n, ReadMap, 4
		l, err := Open(dst, o)
		require.NoError(t, err)
		got, err := l.LoadAll(context.Background())
		require.NoError(t, err)
		require.Len(t, got, len(want))
		assert.Equal(t, l.Plan().Read, l.BytesRead())
		for name, a := range got {
			assert.Equal(t, want[name], digest(t, a), "tensor %s rank %d", name, rank)
			a.Free()
		}
		require.NoError(t, l.Close())
		require.NoError(t, mlx.ClearCache())
		if maps, err := os.ReadFile("/proc/self/maps"); err == nil {
			assert.NotContains(t, string(maps), dst, "a mapping of the shard files outlived its array")
		}
	}
}
