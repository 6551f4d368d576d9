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

// TestEveryRanksPartIsItsPieceOfEverySegmentInEveryMode plans fused,
// last-axis and replicated tensors of a real file and fills every rank's
// part in every read mode; each must equal the part cut out of the whole
// tensor in Go, and the file's BytesRead must grow by what fill reports.
func TestEveryRanksPartIsItsPieceOfEverySegmentInEveryMode(t *testing.T) {
	rules := &RuleSet{Rules: []Rule{
		{Pattern: regexp.MustCompile("qkv"), Action: AllToSharded, Segments: []int64{2, 1, 1}},
		{Pattern: regexp.MustCompile("down"), Action: ShardedToAll},
	}}
	c := newCkpt(3)
	c.add("layers.0.qkv.weight", safetensors.U8, 16, 6)
	c.add("layers.0.down.weight", safetensors.BF16, 12, 8)
	c.add("model.norm.weight", safetensors.F32, 10)
	dir := c.write(t, 1)
	d, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer d.Close()
	for _, n := range []int{2, 4} {
		for k := range n {
			p, err := NewPlan(d.Tensors(), PlanOptions{WorldSize: n, Rank: k, Rules: rules})
			require.NoError(t, err)
			for _, sp := range p.Sections {
				for _, tp := range sp.Tensors {
					info, f, _ := d.Tensor(tp.Name)
					full, err := f.Data(tp.Name)
					require.NoError(t, err)
					want := cutPart(full, info, tp.Split, n, k)
					for _, mode := range []ReadMode{ReadAuto, ReadPread, ReadMmap, ReadMap} {
						label := fmt.Sprintf("%s rank %d/%d %s", tp.Name, k, n, mode)
						dst := make([]byte, tp.ShardBytes)
						before := d.BytesRead()
						read, err := fill(f, &tp, n, k, mode, dst)
						require.NoError(t, err, label)
						assert.Equal(t, want, dst, label)
						assert.Equal(t, read, d.BytesRead()-before, "BytesRead counts each byte read once: %s", label)
						if mode != ReadPread {
							assert.Equal(t, tp.ShardBytes, read, label)
						}
					}
				}
			}
		}
	}
}

// cutPart cuts rank k's piece of n out of a whole tensor's bytes element
// row by element row: each fused segment [Bounds[i-1], Bounds[i]) gives its
// k-th n-th along the split axis, for every index of the axes before it.
func cutPart(full []byte, t safetensors.TensorInfo, s Split, n, k int) []byte {
	if s.Replicated() {
		return full
	}
	outer, inner := int64(1), int64(1)
	for _, d := range t.Shape[:s.Axis] {
		outer *= d
	}
	for _, d := range t.Shape[s.Axis+1:] {
		inner *= d
	}
	elem := int64(t.Dtype.Bits() / 8)
	dim := t.Shape[s.Axis]
	var out []byte
	for o := range outer {
		for i := 1; i < len(s.Bounds); i++ {
			size := (s.Bounds[i] - s.Bounds[i-1]) / int64(n)
			for j := s.Bounds[i-1] + int64(k)*size; j < s.Bounds[i-1]+int64(k+1)*size; j++ {
				at := (o*dim + j) * inner * elem
				out = append(out, full[at:at+inner*elem]...)
			}
		}
	}
	return out
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
