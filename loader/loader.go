package loader

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// ReadMode is how a load reads a file's bytes: the Direct strategy its
// parts, EvalShardEval and ChunkedEval whole tensors (into arrays MLX
// allocates uninitialised, by the same pool of workers).
//
// The default, ReadAuto, takes long runs with pread and short ones from
// the mapping. BenchmarkDirect (wall time and CPU time per byte, warm page
// cache, medians of 5) did not separate pread from the mmap copy on Linux
// 6.18, on a shared 2-core machine: with 15 runnable threads per core,
// pread cost 0.21 CPU ns/B at 1 rank against 0.24 for the mmap copy; with
// 5 per core, 0.21 against 0.18 (auto 0.20), and at 2 ranks auto 0.32,
// pread 0.33, mmap 0.28, while in wall time auto led at 2 ranks. Reasoning
// settles what the figures leave open: pread copies inside the kernel with
// no page fault, where the copy out of a mapping faults every few pages
// and drops them again; but a part split on its last axis is a row of a
// few hundred bytes per row of the tensor, and pread reads those in
// windows that hold the other ranks' bytes (twice the bytes at 2 ranks),
// where the mapping copies only the rank's. ReadAuto reads no byte it does
// not keep. On macOS page faults cost more (llama.cpp measured plain reads
// at 6.4 GB/s and mmap faults at 0.73 GB/s on an M3 Max), which favours
// pread for the long runs. The map mode cost 0.30–0.64 ns/B on Linux, where
// MLX copies the mapping on its one thread. bench/load takes --read in
// BENCH_FLAGS to compare the modes at scale.
type ReadMode int

const (
	// ReadAuto reads byte runs of 256 KiB and more with pread(2) and copies
	// shorter runs (the rows of a part split on its last axis) out of the
	// file's mapping, dropping the copied pages. It is the default.
	ReadAuto ReadMode = iota
	// ReadPread reads with pread(2) alone: no page faults and no mapped
	// pages; short runs are read in windows of up to 4 MiB of the file when
	// they fill at least half of it, so BytesRead may exceed the part.
	ReadPread
	// ReadMmap copies everything from the file's read-only mapping and
	// then drops the copied pages from the process's mapping.
	ReadMmap
	// ReadMap backs each array whose part is one contiguous byte range of
	// its file (a replicated tensor, an axis-0 split, every tensor of a
	// checkpoint Reshard wrote) by a private mapping of that range, handed
	// to MLX as external memory; other parts are read as ReadAuto does.
	// Only Metal can use the mapping without a copy, and only for a part
	// that starts on a 16 KiB page of the file; CPU and CUDA builds copy it
	// on the MLX thread. The arrays count in MLX's active memory either
	// way, so the guard and the plan see them as copies. The mapping is
	// private and writable: MLX may write into a buffer it owns, and those
	// writes stay in the process, never reaching the file.
	ReadMap
	// ReadMLX has MLX's own safetensors loader read each tensor whole, as
	// mlx-lm does (one lazy load per tensor, read with pread in 32 MiB
	// chunks by MLX's small pool of threads when evaluated). Only the
	// strategies that hold full tensors, EvalShardEval and ChunkedEval,
	// take it.
	ReadMLX
)

func (m ReadMode) String() string {
	switch m {
	case ReadPread:
		return "pread"
	case ReadMmap:
		return "mmap"
	case ReadMap:
		return "map"
	case ReadMLX:
		return "mlx"
	}
	return "auto"
}

// UsableMemory gathers from every rank of g what its guard still allows
// (the limit less what it measures in use now), in rank order: the memory
// a placement by memory (PlaceAuto, Place) shares out.
func UsableMemory(ctx context.Context, g *jaccl.Group, guard *memguard.Guard) ([]int64, error) {
	st, err := guard.Status()
	if err != nil {
		return nil, err
	}
	return jaccl.AllGatherSlice(ctx, g, []int64{guard.Limit() - st.Used})
}

// DefaultGuard is the memory guard of a rank: MLX's active memory against
// the machine's physical memory, or against this rank's share of it when
// the launcher started several ranks on this machine (cluster.LocalRanks),
// since ranks that share a machine share its memory and each would
// otherwise let itself fill it. Headroom is memguard's default, max(10%,
// 5 GB) of that share, and MLX_MEMORY_GUARD_GB overrides it.
func DefaultGuard(opts ...memguard.Option) (*memguard.Guard, error) {
	o := []memguard.Option{memguard.WithUsed("active", mlx.ActiveMemory)}
	if local := cluster.LocalRanks(); local > 1 {
		phys, err := memguard.PhysicalMemory()
		if err != nil {
			return nil, err
		}
		o = append(o, memguard.WithPhysical(phys/int64(local)))
	}
	return memguard.FromEnv(append(o, opts...)...)
}

// Options configure a ShardLoader. The zero value loads everything on one
// rank with the Direct strategy, the rules detected from the names, and the
// default memory guard.
type Options struct {
	PlanOptions
	// Guard checks MLX's active memory after every section and, before
	// anything is read, that the plan's peak fits. nil means DefaultGuard:
	// this rank's share of the machine.
	Guard *memguard.Guard
	// IgnorePlan loads even when the predicted peak does not fit.
	IgnorePlan bool
	// Workers is how many tensors are filled at once; 0 means 4.
	Workers int
	// Read chooses how the files are read: auto (default), pread, mmap,
	// map, or, for the strategies that hold whole tensors, MLX's own loader.
	Read ReadMode
	// Logger receives one Info line per section; nil is silent.
	Logger *slog.Logger
	// Progress, when set, is called with every section loaded, before it
	// is yielded.
	Progress func(*Layer)
}

// A Layer is one loaded section: this rank's arrays, by tensor name, and
// the figures of its load. The caller owns the arrays (Free releases them
// all).
type Layer struct {
	Section
	// Index counts sections from 0 in load order, of Count.
	Index, Count int
	Arrays       map[string]*mlx.Array
	// BytesRead is what was read from the files for this section.
	BytesRead int64
	Elapsed   time.Duration
	// Active and Peak are MLX's active and peak memory after the section.
	Active, Peak int64
	// Plan is the section's prediction.
	Plan *SectionPlan
}

// Free frees every array of the layer.
func (l *Layer) Free() {
	for _, a := range l.Arrays {
		a.Free()
	}
}

// String reads "layer 18/63 layers.16: 12 tensors, read 1.23 GB in 512ms, active 20.10 GB, peak 21.30 GB".
func (l *Layer) String() string {
	return fmt.Sprintf("layer %d/%d %s: %d tensors, read %s in %s, active %s, peak %s",
		l.Index+1, l.Count, l.Name, len(l.Arrays), units.FormatGB(l.BytesRead), l.Elapsed.Round(time.Millisecond),
		units.FormatGB(l.Active), units.FormatGB(l.Peak))
}

// ShardLoader loads this rank's shard of a checkpoint section by section.
// Open plans the load from the headers and refuses one that cannot fit;
// Layers runs it.
type ShardLoader struct {
	dir     *safetensors.Dir
	ownDir  bool
	opts    Options
	plan    *Plan
	guard   *memguard.Guard
	log     *slog.Logger
	sizes   map[string]int64 // shard file sizes when planned
	read    atomic.Int64
	elapsed time.Duration
	// stream is set for a load OpenStream made (see stream.go).
	stream *streamer
}

// Open opens the checkpoint at path (see safetensors.OpenDir) and returns a
// loader for it; Close closes the files.
//
// A directory Reshard wrote for one rank (it holds a ShardStampName stamp)
// loads only for that rank and world size, every tensor read whole: its
// files already hold the rank's parts. Another rank gets ErrShardMismatch.
//
// Shard files Reshard wrote, found without their stamp, are the remains of
// an interrupted reshard (or of a stamp removed by hand): Open refuses them
// with ErrUnstampedShard rather than load a fraction of the model as if it
// were whole.
func Open(path string, o Options) (*ShardLoader, error) {
	stamped := false
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if o.PlanOptions, err = presharded(path, o.PlanOptions); err != nil {
			return nil, err
		}
		stamped = o.PlanOptions.Rules != nil && strings.HasPrefix(o.PlanOptions.Rules.Name, "presharded ")
	}
	d, err := safetensors.OpenDir(path)
	if err != nil {
		return nil, err
	}
	if !stamped {
		if err := checkUnstamped(path, d); err != nil {
			d.Close()
			return nil, err
		}
	}
	l, err := New(d, o)
	if err != nil {
		d.Close()
		return nil, err
	}
	l.ownDir = true
	return l, nil
}

// New returns a loader over an open checkpoint, which it does not close.
// It plans the load, validating every split (a *ShardError names each
// tensor that cannot be split), and returns a *PlanError when the
// predicted peak does not fit under the guard, unless IgnorePlan.
func New(d *safetensors.Dir, o Options) (*ShardLoader, error) {
	plan, err := NewPlan(d.Tensors(), o.PlanOptions)
	if err != nil {
		return nil, err
	}
	return newLoader(d, plan, o)
}

// newLoader returns a loader running plan over d, which is nil for a rank
// that receives its shard over the group.
func newLoader(d *safetensors.Dir, plan *Plan, o Options) (*ShardLoader, error) {
	if o.Read == ReadMLX && plan.Strategy == Direct {
		return nil, fmt.Errorf("loader: read mode %s needs a strategy that reads whole tensors (eval-shard-eval or chunked-eval), not %s", o.Read, plan.Strategy)
	}
	var err error
	l := &ShardLoader{dir: d, opts: o, plan: plan, guard: o.Guard, log: o.Logger, sizes: map[string]int64{}}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.opts.Workers <= 0 {
		l.opts.Workers = 4
	}
	if l.guard == nil {
		if l.guard, err = DefaultGuard(); err != nil {
			return nil, err
		}
	}
	if d != nil { // nil for a receiver: no files
		for _, f := range d.Files() {
			st, err := os.Stat(f.Path())
			if err != nil {
				return nil, err
			}
			l.sizes[f.Path()] = st.Size()
		}
	}
	if err := l.guard.Fits(plan.Peak); err != nil {
		if !errors.Is(err, memguard.ErrExceeded) {
			return nil, err
		}
		if !o.IgnorePlan {
			return nil, &PlanError{Plan: plan, Err: err}
		}
		l.log.Warn("loading although the plan does not fit", "err", err)
	}
	return l, nil
}

// Plan returns the load's plan.
func (l *ShardLoader) Plan() *Plan { return l.plan }

// BytesRead returns the bytes read from the files by every load so far.
func (l *ShardLoader) BytesRead() int64 { return l.read.Load() }

// Close closes the checkpoint if Open opened it. Arrays already yielded
// stay valid.
func (l *ShardLoader) Close() error {
	if l.ownDir {
		return l.dir.Close()
	}
	return nil
}

// Layers loads the sections in order and yields each one; the caller owns
// its arrays. After each section the guard checks MLX's active memory: a
// trip frees the section and ends the iteration with the guard's
// *memguard.ExceededError. Cancelling ctx ends it within one section (it
// is checked between tensors) with ctx's error. Any other failure ends it
// with a *LoadError. In every case what the section had created is freed
// before the error is yielded; what earlier sections yielded is the
// caller's to free.
func (l *ShardLoader) Layers(ctx context.Context) iter.Seq2[*Layer, error] {
	return func(yield func(*Layer, error) bool) {
		r := &run{l: l, lazy: map[string]map[string]*mlx.Array{}, listed: map[string]int{}, taken: map[string]string{}}
		defer r.close()
		if l.stream != nil {
			defer l.stream.abandon()
		}
		// The strategies that hold whole tensors read a section, then
		// copy the rank's slices on MLX's thread; the disk would sit idle
		// while they copy and between two sections, so the OS reads the
		// next section ahead, into the page cache.
		var ahead sync.WaitGroup
		defer ahead.Wait()
		prefetch := l.plan.Strategy != Direct && l.stream == nil
		count := len(l.plan.Sections)
		for i := range l.plan.Sections {
			sp := &l.plan.Sections[i]
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			if prefetch && i+1 < count {
				ahead.Wait()
				ahead.Add(1)
				go func() {
					defer ahead.Done()
					l.willNeed(&l.plan.Sections[i+1])
				}()
			}
			start := time.Now()
			var layer *Layer
			var err error
			if l.stream != nil {
				layer, err = l.streamSection(ctx, r, i, sp)
			} else {
				layer, err = r.section(ctx, sp)
			}
			if err != nil {
				yield(nil, err)
				return
			}
			layer.Index, layer.Count, layer.Plan = i, count, sp
			layer.Elapsed = time.Since(start)
			l.elapsed += layer.Elapsed
			l.read.Add(layer.BytesRead)
			if m, err := mlx.Memory(); err == nil {
				layer.Active, layer.Peak = m.Active, m.Peak
			}
			if err := l.guard.Check(fmt.Sprintf("after section %s (%d/%d)", sp.Name, i+1, count)); err != nil {
				layer.Free()
				yield(nil, err)
				return
			}
			l.log.Info(layer.String(), "section", sp.Name, "read", units.FormatGB(layer.BytesRead),
				"active", units.FormatGB(layer.Active), "peak", units.FormatGB(layer.Peak))
			if l.opts.Progress != nil {
				l.opts.Progress(layer)
			}
			if !yield(layer, nil) {
				return
			}
		}
	}
}

// willNeed has the OS read section sp's tensors into the page cache.
func (l *ShardLoader) willNeed(sp *SectionPlan) {
	for _, tp := range sp.Tensors {
		if _, f, ok := l.dir.Tensor(tp.Name); ok {
			_ = f.WillNeed(tp.Name)
		}
	}
}

// LoadAll runs Layers to the end and returns every array by name. On an
// error, everything loaded so far is freed.
func (l *ShardLoader) LoadAll(ctx context.Context) (map[string]*mlx.Array, error) {
	out := map[string]*mlx.Array{}
	for layer, err := range l.Layers(ctx) {
		if err != nil {
			for _, a := range out {
				a.Free()
			}
			return nil, err
		}
		for k, a := range layer.Arrays {
			out[k] = a
		}
	}
	return out, nil
}

// run is the state of one iteration: MLX's lazy arrays per file for the
// MLX-loader strategies.
type run struct {
	l    *ShardLoader
	lazy map[string]map[string]*mlx.Array
	// listed is how many tensors MLX's loader listed in each file, and
	// taken the section each tensor taken from lazy went to: what an
	// error says when a tensor the plan reads is not there.
	listed map[string]int
	taken  map[string]string
}

func (r *run) close() {
	for _, m := range r.lazy {
		for _, a := range m {
			a.Free()
		}
	}
	r.lazy = nil
	_ = mlx.ClearCache()
}

// checkFiles makes sure the files a section reads are still the ones that
// were planned: a file removed or resized would otherwise be read through a
// stale mapping or fault mid-copy.
func (r *run) checkFiles(sp *SectionPlan) error {
	seen := map[string]bool{}
	for _, tp := range sp.Tensors {
		if seen[tp.File] {
			continue
		}
		seen[tp.File] = true
		st, err := os.Stat(tp.File)
		if err != nil {
			return &LoadError{Section: sp.Name, File: tp.File, Err: errors.Join(ErrChanged, err)}
		}
		if want := r.l.sizes[tp.File]; st.Size() != want {
			return &LoadError{Section: sp.Name, File: tp.File,
				Err: fmt.Errorf("%w: size %d, planned with %d", ErrChanged, st.Size(), want)}
		}
	}
	return nil
}

func (r *run) section(ctx context.Context, sp *SectionPlan) (*Layer, error) {
	if err := r.checkFiles(sp); err != nil {
		return nil, err
	}
	layer := &Layer{Section: sp.Section, Arrays: make(map[string]*mlx.Array, len(sp.Tensors))}
	var err error
	switch r.l.plan.Strategy {
	case Direct:
		err = r.direct(ctx, sp, layer)
	default:
		if r.l.opts.Read == ReadMLX {
			err = r.viaMLX(ctx, sp, layer)
		} else {
			err = r.ownFill(ctx, sp, layer)
		}
	}
	if err != nil {
		layer.Free()
		_ = mlx.ClearCache()
		return nil, err
	}
	return layer, nil
}

var errNotInFile = errors.New("MLX's loader does not find the tensor in the file")
