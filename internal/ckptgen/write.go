package ckptgen

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mlxdist/mlxdist/internal/atomicfile"
	"github.com/mlxdist/mlxdist/safetensors"
)

// StampName is the file Write leaves in a finished checkpoint. It records
// the spec, seed and file sizes, so that a later Write of the same spec can
// tell that the work is done.
const StampName = "mkcheckpoint.json"

// Options tune Write. The zero value is ready to use.
type Options struct {
	// Seed selects the random data: the same spec and seed give the same
	// bytes.
	Seed uint64
	// Progress, if set, is called after each piece of data is written with
	// the tensor bytes written so far and the total. Calls never overlap and
	// written never decreases.
	Progress func(written, total int64)
	// Parallel is how many shard files are written at once; 0 means
	// min(GOMAXPROCS, 4).
	Parallel int
	// Force rewrites a checkpoint even when its stamp says it is complete.
	Force bool
}

// Result describes a checkpoint Write produced or found.
type Result struct {
	Dir   string
	Files []string // shard file names, in order
	// TensorBytes is the sum of the tensor sizes (the index's total_size);
	// FileBytes the size of the shard files on disk, headers included.
	TensorBytes int64
	FileBytes   int64
	// Skipped is true when dir already held this checkpoint.
	Skipped bool
}

// stamp is the content of StampName.
type stamp struct {
	Hash       string      `json:"hash"`
	Seed       uint64      `json:"seed"`
	Spec       Spec        `json:"spec"`
	TotalSize  int64       `json:"total_size"`
	ShardFiles []stampFile `json:"shard_files"`
}

type stampFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Layout returns the tensors of s split into s.Files shard files, in order,
// each file a run of consecutive tensors of about the same byte size.
func (s Spec) Layout() ([][]TensorDesc, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	ts := s.Tensors()
	if s.Files > len(ts) {
		return nil, &SpecError{Field: "files", Detail: fmt.Sprintf("%d shard files for %d tensors", s.Files, len(ts))}
	}
	var left int64
	for _, t := range ts {
		left += t.Bytes
	}
	out := make([][]TensorDesc, s.Files)
	i := 0
	for f := range out {
		target := left / int64(s.Files-f)
		var got int64
		for i < len(ts) && len(ts)-i > s.Files-f-1 {
			// Stop near the target, rounding at the middle of the tensor
			// that crosses it; the last file takes the rest.
			if len(out[f]) > 0 && f < s.Files-1 && got+ts[i].Bytes/2 > target {
				break
			}
			out[f] = append(out[f], ts[i])
			got += ts[i].Bytes
			i++
		}
		left -= got
	}
	return out, nil
}

// Write generates the checkpoint s describes in dir (created if missing):
// its shard files of random tensors, model.safetensors.index.json,
// config.json, a byte-level tokenizer and the stamp. Data is streamed in
// pieces of 1 MiB, so a file of any size never sits in memory.
//
// If dir already holds a complete checkpoint of the same spec and seed, as
// its stamp and file sizes say, Write returns at once with Skipped set.
// Otherwise the checkpoint is written into a temporary directory beside dir
// and renamed over it once the stamp is on disk, so dir holds either what
// it held before or the whole new checkpoint, and nothing of an older one
// survives: no stale shard file (mlx-lm loads every model*.safetensors it
// finds), no stamp of another tool. A dir that is neither missing, empty
// nor an earlier Write's output is refused with ErrNotEmpty unless
// opts.Force, which replaces it whole.
func Write(ctx context.Context, dir string, s Spec, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	layout, err := s.Layout()
	if err != nil {
		return nil, err
	}
	res := &Result{Dir: dir}
	for i, ts := range layout {
		res.Files = append(res.Files, safetensors.ShardFileName(i+1, len(layout)))
		for _, t := range ts {
			res.TensorBytes += t.Bytes
		}
	}
	hash := s.Hash(opts.Seed)
	if !opts.Force {
		if size, ok := complete(dir, hash, res.Files); ok {
			res.FileBytes = size
			res.Skipped = true
			return res, nil
		}
	}
	if err := checkTarget(dir, opts.Force); err != nil {
		return nil, err
	}
	out, err := atomicfile.CreateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ckptgen: %w", err)
	}
	if err := writeAll(ctx, out.Path(), s, layout, hash, res, opts); err != nil {
		out.Abort()
		return nil, err
	}
	if err := out.Commit(); err != nil {
		return nil, fmt.Errorf("ckptgen: move the checkpoint into %s: %w", dir, err)
	}
	return res, nil
}

// ErrNotEmpty is returned by Write for a directory that holds files Write
// did not write, unless Options.Force.
var ErrNotEmpty = errors.New("ckptgen: the directory holds files this tool did not write")

// checkTarget refuses a dir with content but without Write's stamp, and,
// even when forced, a dir with subdirectories: a checkpoint is flat, and a
// mistyped --out (a home or project directory) must not be replaced.
func checkTarget(dir string, force bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ckptgen: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			return fmt.Errorf("%w: %s holds the directory %s, so it is no checkpoint; give a new or empty directory",
				ErrNotEmpty, dir, e.Name())
		}
	}
	if force {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, StampName)); err == nil && json.Valid(b) {
		return nil
	}
	return fmt.Errorf("%w: %s holds %d files and no %s; give a new or empty directory, or --force to replace it whole",
		ErrNotEmpty, dir, len(entries), StampName)
}

// writeAll writes the whole checkpoint into the empty directory dir.
func writeAll(ctx context.Context, dir string, s Spec, layout [][]TensorDesc, hash string, res *Result, opts *Options) error {
	if err := writeShards(ctx, dir, layout, res, opts); err != nil {
		return err
	}

	st := stamp{Hash: hash, Seed: opts.Seed, Spec: s, TotalSize: res.TensorBytes}
	weightMap := map[string]string{}
	for i, name := range res.Files {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("ckptgen: %w", err)
		}
		res.FileBytes += fi.Size()
		st.ShardFiles = append(st.ShardFiles, stampFile{name, fi.Size()})
		for _, t := range layout[i] {
			weightMap[t.Name] = name
		}
	}
	index := map[string]any{"metadata": map[string]any{"total_size": res.TensorBytes}, "weight_map": weightMap}
	tok, tokCfg := tokenizerFiles(s.Vocab)
	for _, f := range []struct {
		name string
		v    any
	}{
		{safetensors.IndexName, index},
		{"config.json", s.Config()},
		{"tokenizer.json", json.RawMessage(tok)},
		{"tokenizer_config.json", json.RawMessage(tokCfg)},
		{StampName, st}, // last: it vouches for everything before it
	} {
		if err := writeJSON(filepath.Join(dir, f.name), f.v); err != nil {
			return err
		}
	}
	return nil
}

// complete reports whether dir holds a finished checkpoint with this hash
// and these shard files, and their total size.
func complete(dir, hash string, files []string) (int64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, StampName))
	if err != nil {
		return 0, false
	}
	var st stamp
	if json.Unmarshal(b, &st) != nil || st.Hash != hash || len(st.ShardFiles) != len(files) {
		return 0, false
	}
	var total int64
	for i, f := range st.ShardFiles {
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		if f.Name != files[i] || err != nil || fi.Size() != f.Size {
			return 0, false
		}
		total += f.Size
	}
	for _, name := range []string{safetensors.IndexName, "config.json", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return 0, false
		}
	}
	return total, true
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("ckptgen: encode %s: %w", filepath.Base(path), err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o666); err != nil {
		return fmt.Errorf("ckptgen: %w", err)
	}
	return nil
}

// progress serialises the callback across the file writers.
type progress struct {
	mu    sync.Mutex
	done  int64
	total int64
	fn    func(written, total int64)
}

func (p *progress) add(n int64) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	p.done += n
	p.fn(p.done, p.total)
	p.mu.Unlock()
}

func writeShards(ctx context.Context, dir string, layout [][]TensorDesc, res *Result, opts *Options) error {
	workers := opts.Parallel
	if workers <= 0 {
		workers = min(runtime.GOMAXPROCS(0), 4)
	}
	workers = min(workers, len(layout))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prog := &progress{total: res.TensorBytes, fn: opts.Progress}
	var next atomic.Int64
	errs := make([]error, len(layout))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunkSize)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(layout) || ctx.Err() != nil {
					return
				}
				errs[i] = writeShard(ctx, filepath.Join(dir, res.Files[i]), layout[i], opts.Seed, buf, prog)
				if errs[i] != nil {
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	// A worker that stopped for another's failure reports nothing; the
	// first real error is what matters.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return ctx.Err()
}

// chunkSize is a multiple of 8, so a tensor's random stream does not depend
// on how it is cut into pieces.
const chunkSize = 1 << 20

func writeShard(ctx context.Context, path string, ts []TensorDesc, seed uint64, buf []byte, prog *progress) error {
	specs := make([]safetensors.TensorSpec, len(ts))
	for i, t := range ts {
		dt, err := safetensors.ParseDtype(t.Dtype)
		if err != nil {
			return err
		}
		specs[i] = safetensors.TensorSpec{Name: t.Name, Dtype: dt, Shape: t.Shape}
	}
	w, err := safetensors.Create(path, specs, map[string]string{"format": "mlx"})
	if err != nil {
		return err
	}
	for _, t := range ts {
		g := newFiller(seed, t)
		for left := t.Bytes; left > 0; {
			if err := ctx.Err(); err != nil {
				w.Abort()
				return err
			}
			p := buf[:min(left, chunkSize)]
			g.fill(p)
			if _, err := w.Write(p); err != nil {
				w.Abort()
				return err
			}
			left -= int64(len(p))
			prog.add(int64(len(p)))
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	// The writer's temporary file is private; a checkpoint is for reading.
	return os.Chmod(path, 0o644)
}

// filler produces one tensor's bytes: uniform random bits for packed
// weights, and for floating-point tensors values in a range chosen by what
// the tensor is, so that mlx-lm's forward pass stays finite:
//
//   - norm weights in [0.9, 1.1];
//   - quantization scales in [0.002, 0.006] and biases in [-0.045,
//     -0.015], so that dequantized weights (scale·q + bias, q in 0..15)
//     centre near zero;
//   - everything else in [-0.05, 0.05].
type filler struct {
	rng   *rand.PCG
	table *[65536]uint16 // for 16-bit floats: random index → encoded value
	lo    float32        // for F32
	hi    float32
}

func newFiller(seed uint64, t TensorDesc) *filler {
	h := fnv.New64a()
	h.Write([]byte(t.Name))
	f := &filler{rng: rand.NewPCG(seed, h.Sum64())}
	lo, hi := valueRange(t.Name)
	switch t.Dtype {
	case "BF16", "F16":
		f.table = table16(t.Dtype, lo, hi)
	case "F32":
		f.lo, f.hi = float32(lo), float32(hi)
	}
	return f
}

func valueRange(name string) (lo, hi float64) {
	switch {
	case strings.HasSuffix(name, ".scales"):
		return 0.002, 0.006
	case strings.HasSuffix(name, ".biases"):
		return -0.045, -0.015
	case strings.HasSuffix(name, "e_score_correction_bias"):
		return -0.01, 0.01
	case strings.Contains(name, "norm") && strings.HasSuffix(name, ".weight"):
		return 0.9, 1.1
	}
	return -0.05, 0.05
}

func (f *filler) fill(p []byte) {
	var tmp [8]byte
	for len(p) > 0 {
		var q []byte
		if len(p) >= 8 {
			q = p[:8]
		} else {
			q = tmp[:]
		}
		r := f.rng.Uint64()
		switch {
		case f.table != nil:
			binary.LittleEndian.PutUint16(q[0:], f.table[uint16(r)])
			binary.LittleEndian.PutUint16(q[2:], f.table[uint16(r>>16)])
			binary.LittleEndian.PutUint16(q[4:], f.table[uint16(r>>32)])
			binary.LittleEndian.PutUint16(q[6:], f.table[uint16(r>>48)])
		case f.hi > f.lo:
			for k := range 2 {
				u := float32(uint32(r>>(32*k))>>8) / (1 << 24)
				binary.LittleEndian.PutUint32(q[4*k:], math.Float32bits(f.lo+(f.hi-f.lo)*u))
			}
		default:
			binary.LittleEndian.PutUint64(q, r)
		}
		n := copy(p, q)
		p = p[n:]
	}
}

var (
	tablesMu sync.Mutex
	tables   = map[[3]any]*[65536]uint16{}
)

// table16 maps 16 random bits to a value spread evenly over [lo, hi],
// encoded as dtype; a lookup is much cheaper than a conversion per element.
func table16(dtype string, lo, hi float64) *[65536]uint16 {
	key := [3]any{dtype, lo, hi}
	tablesMu.Lock()
	defer tablesMu.Unlock()
	if t, ok := tables[key]; ok {
		return t
	}
	t := new([65536]uint16)
	for i := range t {
		v := float32(lo + (hi-lo)*(float64(i)+0.5)/65536)
		if dtype == "BF16" {
			t[i] = uint16(math.Float32bits(v) >> 16)
		} else {
			t[i] = float16(v)
		}
	}
	tables[key] = t
	return t
}

// float16 encodes a normal, in-range v as IEEE half precision, truncating
// the mantissa; the values here are far from the subnormal and overflow
// ranges.
func float16(v float32) uint16 {
	b := math.Float32bits(v)
	sign := uint16(b>>16) & 0x8000
	exp := int((b>>23)&0xff) - 127 + 15
	if exp <= 0 {
		return sign
	}
	return sign | uint16(exp)<<10 | uint16((b>>13)&0x3ff)
}
