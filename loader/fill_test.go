package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
)

func TestPiecesCoverEverySpanOnceInOrder(t *testing.T) {
	cases := []struct {
		name  string
		spans []span
		size  int64
		want  int // pieces
	}{
		{"one short span is one piece", []span{{100, 10, 0}}, 64, 1},
		{"a long span is cut into whole pieces and a rest", []span{{100, 150, 0}}, 64, 3},
		{"short spans are gathered up to the size", []span{{0, 30, 0}, {50, 30, 30}, {100, 30, 60}, {150, 30, 90}}, 64, 2},
		{"a span that crosses a piece's end is cut there", []span{{0, 40, 0}, {100, 40, 40}}, 64, 2},
		{"nothing gives no piece", nil, 64, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ps := pieces(c.spans, c.size)
			assert.Len(t, ps, c.want)
			// Walking the pieces in order gives back every byte of every
			// span, file offset and part position together, exactly once.
			var got []span
			for _, p := range ps {
				var n int64
				for _, s := range p {
					n += s.length
					if k := len(got) - 1; k >= 0 && got[k].off+got[k].length == s.off && got[k].pos+got[k].length == s.pos {
						got[k].length += s.length
						continue
					}
					got = append(got, s)
				}
				assert.LessOrEqual(t, n, c.size, "a piece holds at most size bytes")
			}
			var want []span
			for _, s := range c.spans {
				if k := len(want) - 1; k >= 0 && want[k].off+want[k].length == s.off && want[k].pos+want[k].length == s.pos {
					want[k].length += s.length
					continue
				}
				want = append(want, s)
			}
			assert.Equal(t, want, got)
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
