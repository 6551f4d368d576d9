package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// streamRules shard streamCkpt: a fused QKV of segments 2:1:1, a fused,
// quantized gate/up of 1:1, quantized sharded-to-all projections and
// stacked quantized experts. Every split divides by 2, 3 and 4.
func streamRules() *RuleSet {
	return &RuleSet{Name: "stream-test", Rules: []Rule{
		{Pattern: lin(`self_attn\.qkv_proj`), Action: AllToSharded, Segments: []int64{2, 1, 1}},
		{Pattern: lin(`mlp\.gate_up_proj`), Action: AllToSharded, Segments: []int64{1, 1}},
		{Pattern: lin(`self_attn\.o_proj`, `mlp\.down_proj`), Action: ShardedToAll},
		{Pattern: lin(`switch_mlp\.up_proj`), Action: AllToSharded},
	}}
}

// streamCkpt is a four-layer checkpoint for streamRules, in two files.
func streamCkpt() *ckpt {
	c := newCkpt(17)
	c.add("model.embed_tokens.weight", safetensors.BF16, 128, 64)
	for l := range 4 {
		p := "model.layers." + itoa(l) + "."
		c.add(p+"input_layernorm.weight", safetensors.BF16, 64)
		c.add(p+"self_attn.qkv_proj.weight", safetensors.BF16, 96, 64)
		c.add(p+"self_attn.qkv_proj.bias", safetensors.BF16, 96)
		c.qlinear(p+"self_attn.o_proj", 64, 384)
		c.qlinear(p+"mlp.gate_up_proj", 768, 64)
		c.qlinear(p+"mlp.down_proj", 64, 384)
		c.qlinear(p+"mlp.switch_mlp.up_proj", 384, 64, 4)
	}
	c.add("model.norm.weight", safetensors.BF16, 64)
	c.add("lm_head.weight", safetensors.BF16, 128, 64)
	return c
}

// streamFigures is what a rank program of the streaming tests reports.
type streamFigures struct {
	Rank, Size int
	Source     bool
	Tensors    int
	Identical  int
	// Shard is what the plan says the rank keeps; Peak MLX's peak during
	// the load above what was active before it.
	Shard, Peak                  int64
	Sent, Received, InFlightPeak int64
	SourceExtra                  int64
	Links                        []StreamLink
}

const streamMarker = "STREAM_FIGURES "

// streamLeftMarker prefixes the bytes of MLX memory a rank whose load
// failed still had active after closing its loader.
const streamLeftMarker = "STREAM_LEFT "

// streamTimeMarker prefixes a rank's load time in nanoseconds when the
// rank program runs for BenchmarkStreamedLoad.
const streamTimeMarker = "STREAM_LOAD_NS "

// streamRank is the rank program of the streaming tests: it loads its
// shard with OpenStream, measures it, and compares every array with the
// part a Direct load of the reference files gives.
func streamRank() error {
	// The launcher stops every rank once one fails; a receiver must end on
	// its own, with its own error, which this test wants to see.
	signal.Ignore(syscall.SIGTERM)
	if err := mlx.Load(); err != nil {
		return err
	}
	ctx := context.Background()
	var err error
	timeout := 10 * time.Second
	if v := os.Getenv("LOADER_STREAM_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			return err
		}
	}
	g, err := jaccl.Init(ctx, jaccl.Options{Backend: jaccl.Ring, Strict: true, Timeout: timeout})
	if err != nil {
		return err
	}
	defer g.Close()
	rank, n := g.Rank(), g.Size()
	expand := func(s string) string { return strings.ReplaceAll(s, "{rank}", strconv.Itoa(rank)) }
	guard, err := newTestGuard()
	if err != nil {
		return err
	}
	window, _ := strconv.ParseInt(os.Getenv("LOADER_STREAM_WINDOW"), 10, 64)
	o := StreamOptions{Options: Options{Guard: guard, PlanOptions: PlanOptions{Rules: streamRules()}}, Window: window}
	if c := os.Getenv("LOADER_STREAM_CACHE"); c != "" {
		o.Cache = expand(c)
	}
	if fault := os.Getenv("LOADER_STREAM_FAULT"); fault != "" {
		// "die|kill|stop:rank:section": that rank exits, is killed, or
		// stops answering, once it has loaded that section.
		f := strings.Split(fault, ":")
		if f[1] == strconv.Itoa(rank) {
			o.Progress = func(l *Layer) {
				if strconv.Itoa(l.Index) != f[2] {
					return
				}
				fmt.Println(f[0], "after section", l.Name)
				switch f[0] {
				case "stop":
					// Hung, its sockets open: only the others' watchdogs
					// can end the job.
					time.Sleep(time.Hour)
				case "kill":
					// No exit path runs: the kernel closes its sockets.
					_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
				os.Exit(3)
			}
		}
	}
	if name := os.Getenv("LOADER_STREAM_CORRUPT"); name != "" {
		// A source changes one byte of that tensor's part after taking its
		// checksum.
		testHookPartRead = func(tensor string, _ int, part []byte) {
			if tensor == name {
				part[len(part)/2] ^= 0x40
			}
		}
	}
	if err := mlx.ClearCache(); err != nil {
		return err
	}
	baseline, err := mlx.ActiveMemory()
	if err != nil {
		return err
	}
	// A rank whose load fails reports what MLX memory it left allocated.
	leftOver := func() {
		if err := mlx.ClearCache(); err != nil {
			return
		}
		if now, err := mlx.ActiveMemory(); err == nil {
			fmt.Printf("%s%d\n", streamLeftMarker, int64(now)-int64(baseline))
		}
	}
	path := expand(os.Getenv("LOADER_STREAM_MODEL"))
	l, err := OpenStream(ctx, g, path, o)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := mlx.ClearCache(); err != nil {
		return err
	}
	if err := mlx.ResetPeakMemory(); err != nil {
		return err
	}
	before, err := mlx.ActiveMemory()
	if err != nil {
		return err
	}
	start := time.Now()
	got, err := l.LoadAll(ctx)
	if err != nil {
		leftOver()
		return err
	}
	loadTime := time.Since(start)
	defer func() {
		for _, a := range got {
			a.Free()
		}
	}()
	if os.Getenv("LOADER_STREAM_BENCH") != "" {
		// Timed only: the benchmark wants the load's time, not its bytes.
		fmt.Printf("%s%d\n", streamTimeMarker, loadTime.Nanoseconds())
		return nil
	}
	peak, err := mlx.PeakMemory()
	if err != nil {
		return err
	}
	st := l.StreamStats()
	f := streamFigures{Rank: rank, Size: n, Tensors: len(got), Shard: l.Plan().Resident, Peak: int64(peak - before),
		Sent: st.Sent, Received: st.Received, InFlightPeak: st.InFlightPeak}
	if _, err := os.Stat(path); err == nil {
		f.Source = true
	}
	if sp := l.Stream(); sp != nil {
		f.SourceExtra, f.Links = sp.SourceExtra, sp.Links
	}

	ref, err := Open(os.Getenv("LOADER_STREAM_REF"), Options{Guard: guard, PlanOptions: PlanOptions{Rank: rank, WorldSize: n, Rules: streamRules()}})
	if err != nil {
		return err
	}
	defer ref.Close()
	want, err := ref.LoadAll(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range want {
			a.Free()
		}
	}()
	if len(want) != len(got) {
		return fmt.Errorf("streamed %d arrays, the files give %d", len(got), len(want))
	}
	for name, w := range want {
		a, ok := got[name]
		if !ok {
			return fmt.Errorf("tensor %q was not streamed", name)
		}
		if fmt.Sprint(a.Shape(), a.Dtype()) != fmt.Sprint(w.Shape(), w.Dtype()) {
			return fmt.Errorf("tensor %q streamed as %v %v, the files give %v %v", name, a.Shape(), a.Dtype(), w.Shape(), w.Dtype())
		}
		ab, err := a.Bytes()
		if err != nil {
			return err
		}
		wb, err := w.Bytes()
		if err != nil {
			return err
		}
		if !bytes.Equal(ab, wb) {
			return fmt.Errorf("tensor %q: the streamed bytes differ from the files'", name)
		}
		f.Identical++
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	fmt.Println(streamMarker + string(b))
	return nil
}

// streamJob is a checkpoint reachable at root/r{rank} for the given ranks
// only.
type streamJob struct {
	ckpt, root string
}

func newStreamJob(t *testing.T, sources ...int) streamJob {
	t.Helper()
	return newStreamJobOf(t, streamCkpt(), sources...)
}

// newStreamJobOf is newStreamJob for checkpoint c.
func newStreamJobOf(t testing.TB, c *ckpt, sources ...int) streamJob {
	t.Helper()
	j := streamJob{ckpt: c.write(t, 2), root: t.TempDir()}
	for _, s := range sources {
		require.NoError(t, os.Symlink(j.ckpt, filepath.Join(j.root, "r"+strconv.Itoa(s))))
	}
	return j
}

// run launches n ranks of streamRank over ring and returns their output,
// the figures each printed, and the launcher's error.
func (j streamJob) run(t *testing.T, n int, env ...string) (string, map[int]streamFigures, time.Duration, error) {
	t.Helper()
	return j.runGrace(t, n, 40*time.Second, env...)
}

// runGrace is run with the time the launcher gives a rank it stops before
// killing it (the ranks ignore the stop).
func (j streamJob) runGrace(t testing.TB, n int, grace time.Duration, env ...string) (string, map[int]streamFigures, time.Duration, error) {
	t.Helper()
	requireMLX(t)
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		unavailable(t, "MLX has no ring back-end: %v", err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]}, N: n,
		Env: append([]string{"LOADER_TEST_HELPER=stream", "LOADER_STREAM_MODEL=" + filepath.Join(j.root, "r{rank}"),
			"LOADER_STREAM_REF=" + j.ckpt}, env...),
		Stdout: &out, Stderr: &out, Grace: grace,
	})
	elapsed := time.Since(start)
	figs := map[int]streamFigures{}
	for _, line := range strings.Split(out.String(), "\n") {
		_, js, ok := strings.Cut(line, streamMarker)
		if !ok {
			continue
		}
		var f streamFigures
		require.NoError(t, json.Unmarshal([]byte(js), &f), line)
		figs[f.Rank] = f
	}
	return out.String(), figs, elapsed, err
}

func TestStreamedShardsEqualThePartsReadFromTheFiles(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		sources []int
		window  int64
		// links are the source→receiver pairs the plan must use.
		links [][2]int
	}{
		{"two ranks, rank 0 streams to rank 1", 2, []int{0}, 0, [][2]int{{0, 1}}},
		{"two ranks with a window smaller than a part", 2, []int{0}, 4 << 10, [][2]int{{0, 1}}},
		{"three ranks, rank 0 streams to its two neighbours", 3, []int{0}, 64 << 10, [][2]int{{0, 1}, {0, 2}}},
		{"four ranks, two sources each stream to their neighbour", 4, []int{0, 1}, 64 << 10, [][2]int{{0, 3}, {1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newStreamJob(t, tt.sources...)
			out, figs, _, err := j.run(t, tt.n, "LOADER_STREAM_WINDOW="+strconv.FormatInt(tt.window, 10))
			require.NoError(t, err, out)
			require.Len(t, figs, tt.n, out)
			sent, received := map[int]int64{}, map[int]int64{}
			for _, l := range figs[0].Links {
				sent[l.Source] += l.Bytes
				received[l.Receiver] += l.Bytes
			}
			var pairs [][2]int
			for _, l := range figs[0].Links {
				pairs = append(pairs, [2]int{l.Source, l.Receiver})
			}
			assert.Equal(t, tt.links, pairs)
			for r := range tt.n {
				f := figs[r]
				assert.Equal(t, f.Tensors, f.Identical, "rank %d", r)
				assert.Equal(t, 3+4*15, f.Tensors, "rank %d", r)
				assert.Equal(t, figs[0].Links, f.Links, "rank %d plans other links than rank 0", r)
				if f.Source {
					assert.Equal(t, sent[r], f.Sent, "rank %d sent", r)
					assert.Zero(t, f.Received)
					assert.Positive(t, f.InFlightPeak)
					assert.LessOrEqual(t, f.InFlightPeak, f.SourceExtra, "rank %d held more in flight than its window", r)
					assert.LessOrEqual(t, f.Peak-f.Shard, f.SourceExtra+f.Shard/100, "rank %d: MLX peak %d over shard %d exceeds the window %d", r, f.Peak, f.Shard, f.SourceExtra)
					continue
				}
				assert.Equal(t, f.Shard, f.Received, "rank %d received", r)
				assert.Equal(t, received[r], f.Received, "rank %d received", r)
				assert.Zero(t, f.Sent)
				ratio := float64(f.Peak) / float64(f.Shard)
				assert.LessOrEqual(t, ratio, 1.01, "rank %d: MLX peak %d for a shard of %d", r, f.Peak, f.Shard)
				t.Logf("rank %d received %d bytes, peak/shard %.4f", r, f.Received, ratio)
			}
		})
	}
}

func TestAReceiverCachesWhatItReceivedAsItsOwnShard(t *testing.T) {
	j := newStreamJob(t, 0)
	cache := filepath.Join(t.TempDir(), "cache{rank}")
	out, figs, _, err := j.run(t, 2, "LOADER_STREAM_CACHE="+cache)
	require.NoError(t, err, out)
	require.Len(t, figs, 2, out)
	dir := strings.ReplaceAll(cache, "{rank}", "1")
	st, err := ReadShardStamp(dir)
	require.NoError(t, err)
	require.NotNil(t, st, "no stamp in the cache")
	assert.Equal(t, ShardStamp{Rank: 1, WorldSize: 2, Rules: "stream-test", Source: "streamed", Tensors: figs[1].Tensors, Bytes: figs[1].Shard}, *st)
	_, err = os.Stat(strings.ReplaceAll(cache, "{rank}", "0"))
	assert.ErrorIs(t, err, os.ErrNotExist, "a source wrote a cache")
	entries, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "temporary files left beside the cache")

	load := func(path string) map[string][]byte {
		l, err := Open(path, Options{Guard: newGuard(t, 1<<50, 1<<30), PlanOptions: PlanOptions{Rank: 1, WorldSize: 2, Rules: streamRules()}})
		require.NoError(t, err)
		defer l.Close()
		arrays, err := l.LoadAll(context.Background())
		require.NoError(t, err)
		out := map[string][]byte{}
		for name, a := range arrays {
			out[name], err = a.Bytes()
			require.NoError(t, err)
			a.Free()
		}
		return out
	}
	assert.Equal(t, load(j.ckpt), load(dir))
}

func TestAFailedSourceEndsItsReceiversWithTheRankAndSection(t *testing.T) {
	tests := []struct {
		name, fault string
		grace       time.Duration
		// within bounds the job: the receivers must end on their own.
		within time.Duration
		want   string
	}{
		{"a source killed mid-stream", "die:0:1", 40 * time.Second, 30 * time.Second,
			`receiving from rank 0: .*connection to a peer was lost`},
		{"a source that stops answering mid-stream", "stop:0:1", 3 * time.Second, 15 * time.Second,
			`receiving from rank 0: loader: a streamed transfer stalled: nothing came through for 3.6s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newStreamJob(t, 0)
			out, _, elapsed, err := j.runGrace(t, 3, tt.grace, "LOADER_STREAM_WINDOW=4096", "LOADER_STREAM_FAULT="+tt.fault,
				"LOADER_STREAM_TIMEOUT=4s")
			// Which rank the launcher sees fail first is a race between the
			// source's end and its receivers noticing it.
			var re *cluster.RankError
			require.ErrorAs(t, err, &re, out)
			assert.NotZero(t, re.ExitCode, out)
			assert.Contains(t, out, "[0] "+strings.Split(tt.fault, ":")[0]+" after section ")
			assert.Less(t, elapsed, tt.within, out)
			for _, r := range []string{"1", "2"} {
				assert.Regexp(t, `\[`+r+`\] .*loader: section (layers\.\d|before|after): `+tt.want, out)
			}
		})
	}
}

func TestStreamPlansShareTheWorkAndRespectTheRing(t *testing.T) {
	d, err := safetensors.OpenDir(streamCkpt().write(t, 1))
	require.NoError(t, err)
	defer d.Close()
	plan := func(n int) *Plan {
		p, err := NewPlan(d.Tensors(), PlanOptions{WorldSize: n, Rules: streamRules()})
		require.NoError(t, err)
		return p
	}
	tests := []struct {
		name       string
		n          int
		sources    []int
		neighbours bool
		// wantSent is each source's share of the bytes, in sections.
		want map[[2]int]int
		err  string
	}{
		{"one source serves everyone over a mesh", 4, []int{0}, false, map[[2]int]int{{0, 1}: 6, {0, 2}: 6, {0, 3}: 6}, ""},
		{"two sources take turns for one receiver", 3, []int{0, 2}, true, map[[2]int]int{{0, 1}: 3, {2, 1}: 3}, ""},
		{"a receiver with no neighbouring source is refused over ring", 4, []int{0}, true, nil, "rank 2 cannot receive its shard"},
		{"no source at all is refused", 2, nil, false, nil, "no rank holds the checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp, err := NewStreamPlan(plan(tt.n), tt.sources, tt.neighbours, 0)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			got := map[[2]int]int{}
			for _, l := range sp.Links {
				got[[2]int{l.Source, l.Receiver}] = l.Sections
			}
			assert.Equal(t, tt.want, got)
			pr := sp.Predict(0, 1e9, 1e9)
			var most int64
			for _, s := range tt.sources {
				var b int64
				for _, l := range sp.Links {
					if l.Source == s {
						b += l.Bytes
					}
				}
				most = max(most, b)
			}
			assert.Equal(t, time.Duration(float64(most)/1e9*float64(time.Second)), pr.Total)
		})
	}
}
