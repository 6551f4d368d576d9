package loader

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// consume runs the iteration, freeing what it receives, and returns the
// number of sections received and the error that ended it.
func consume(l *ShardLoader, ctx context.Context, after func(i int)) (int, error) {
	n := 0
	for layer, err := range l.Layers(ctx) {
		if err != nil {
			return n, err
		}
		layer.Free()
		n++
		if after != nil {
			after(n)
		}
	}
	return n, nil
}

func TestAFailureMidLoadEndsTheIterationWithItsTypedErrorAndLeavesNoMemory(t *testing.T) {
	requireMLX(t)
	type way struct {
		s    Strategy
		read ReadMode
	}
	ways := []way{{Direct, ReadAuto}, {EvalShardEval, ReadAuto}, {EvalShardEval, ReadMLX}, {ChunkedEval, ReadAuto}, {ChunkedEval, ReadMLX}}
	cases := []struct {
		name string
		// setup returns options and a hook run after the first section.
		setup func(t *testing.T, dir string) (Options, func())
		check func(t *testing.T, err error)
	}{
		{"a guard that trips after the first section",
			func(t *testing.T, dir string) (Options, func()) {
				start, err := mlx.ActiveMemory()
				require.NoError(t, err)
				// Room for the plan's check (nothing active yet) but not
				// for more than a few KB once loading.
				return Options{Guard: newGuard(t, start+2_000+1<<30, 1<<30), IgnorePlan: true}, nil
			},
			func(t *testing.T, err error) {
				var ee *memguard.ExceededError
				require.ErrorAs(t, err, &ee)
				assert.Equal(t, "active", ee.Measure)
			}},
		{"a context cancelled after the first section",
			func(t *testing.T, dir string) (Options, func()) { return bigGuard(t), nil },
			func(t *testing.T, err error) { assert.ErrorIs(t, err, context.Canceled) }},
		{"a shard file removed after planning",
			func(t *testing.T, dir string) (Options, func()) {
				return bigGuard(t), func() { require.NoError(t, os.Remove(filepath.Join(dir, safetensors.ShardFileName(2, 2)))) }
			},
			func(t *testing.T, err error) {
				var le *LoadError
				require.ErrorAs(t, err, &le)
				assert.ErrorIs(t, err, ErrChanged)
				assert.ErrorIs(t, err, os.ErrNotExist)
			}},
		{"a shard file truncated after planning",
			func(t *testing.T, dir string) (Options, func()) {
				return bigGuard(t), func() {
					p := filepath.Join(dir, safetensors.ShardFileName(2, 2))
					require.NoError(t, os.Truncate(p, fileSize(t, p)/2))
				}
			},
			func(t *testing.T, err error) {
				var le *LoadError
				require.ErrorAs(t, err, &le)
				assert.ErrorIs(t, err, ErrChanged)
				assert.Contains(t, le.File, safetensors.ShardFileName(2, 2))
			}},
	}
	for _, c := range cases {
		for _, w := range ways {
			t.Run(c.name+", "+w.s.String()+", read "+w.read.String(), func(t *testing.T) {
				dir := kimiLike(3).write(t, 2)
				start, err := mlx.ActiveMemory()
				require.NoError(t, err)
				o, hook := c.setup(t, dir)
				o.Rank, o.WorldSize, o.Strategy, o.Rules, o.Read = 1, 2, w.s, DeepSeekV3Rules(4), w.read
				l, err := Open(dir, o)
				require.NoError(t, err)
				defer l.Close()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				n, err := consume(l, ctx, func(int) {
					if hook != nil {
						hook()
					}
					if c.name == "a context cancelled after the first section" {
						cancel()
					}
				})
				require.Error(t, err)
				assert.Less(t, n, len(l.Plan().Sections))
				c.check(t, err)
				require.NoError(t, mlx.ClearCache())
				end, err := mlx.ActiveMemory()
				require.NoError(t, err)
				assert.Equal(t, start, end, "MLX memory left behind")
			})
		}
	}
}

func TestACorruptFileIsAnErrorOfMLXsLoaderNotACrash(t *testing.T) {
	requireMLX(t)
	dir := kimiLike(4).write(t, 2)
	start, err := mlx.ActiveMemory()
	require.NoError(t, err)
	o := bigGuard(t)
	o.Rank, o.WorldSize, o.Strategy, o.Read = 0, 2, EvalShardEval, ReadMLX
	l, err := Open(dir, o)
	require.NoError(t, err)
	defer l.Close()
	// Same size, so the size check passes: the header is garbage now, and
	// MLX's loader reads it again when the section is loaded.
	p := filepath.Join(dir, safetensors.ShardFileName(1, 2))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	copy(b[8:], "not json at all")
	require.NoError(t, os.WriteFile(p, b, 0o644))
	_, err = consume(l, context.Background(), nil)
	var le *LoadError
	require.ErrorAs(t, err, &le)
	var me *mlx.Error
	assert.True(t, errors.As(err, &me), "want the MLX error inside, got %v", err)
	require.NoError(t, mlx.ClearCache())
	end, err := mlx.ActiveMemory()
	require.NoError(t, err)
	assert.Equal(t, start, end)
}

func TestATruncatedMappingFaultsIntoAnError(t *testing.T) {
	dir := kimiLike(5).write(t, 1)
	d, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer d.Close()
	if !d.Files()[0].Mapped() {
		t.Skip("files are not mapped on this OS")
	}
	plan, err := NewPlan(d.Tensors(), PlanOptions{WorldSize: 2, Rules: DeepSeekV3Rules(4)})
	require.NoError(t, err)
	tp := &plan.Sections[len(plan.Sections)-1].Tensors[0]
	require.NoError(t, os.Truncate(d.Files()[0].Path(), 4096))
	dst := make([]byte, tp.ShardBytes)
	_, err = fill(d.Files()[0], tp, 2, 0, ReadMmap, dst)
	assert.ErrorContains(t, err, "faulted")
}

func TestAPlanThatWouldNotFitIsRefusedBeforeReading(t *testing.T) {
	dir := kimiLike(6).write(t, 2)
	active, err := mlx.ActiveMemory()
	if err != nil {
		unavailable(t, "MLX is not available: %v", err)
	}
	g := newGuard(t, active+10_000+1<<30, 1<<30)
	l, err := Open(dir, Options{Guard: g, PlanOptions: PlanOptions{WorldSize: 2}})
	var pe *PlanError
	require.ErrorAs(t, err, &pe)
	assert.ErrorIs(t, err, ErrWontFit)
	assert.ErrorIs(t, err, memguard.ErrExceeded)
	assert.Nil(t, l)
	assert.Positive(t, pe.Plan.Peak)

	l, err = Open(dir, Options{Guard: g, IgnorePlan: true, PlanOptions: PlanOptions{WorldSize: 2}})
	require.NoError(t, err)
	assert.NoError(t, l.Close())
}

func TestProgressAndTheLoggerHearOfEverySection(t *testing.T) {
	requireMLX(t)
	dir := kimiLike(8).write(t, 2)
	var lines []string
	var logged bytes.Buffer
	o := bigGuard(t)
	o.WorldSize, o.Rules = 2, DeepSeekV3Rules(4)
	o.Progress = func(l *Layer) { lines = append(lines, l.String()) }
	o.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	l, err := Open(dir, o)
	require.NoError(t, err)
	defer l.Close()
	n, err := consume(l, context.Background(), nil)
	require.NoError(t, err)
	require.Len(t, lines, n)
	assert.Regexp(t, `^layer 2/7 layers\.0: \d+ tensors, read 0\.00 GB in .*, active .* GB, peak .* GB$`, lines[1])
	assert.Equal(t, n, strings.Count(logged.String(), "level=INFO"))
	assert.Equal(t, l.Plan().Read, l.BytesRead())
}
