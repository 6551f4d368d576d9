package loader

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// mlxDtype maps a file's dtype to the MLX dtype its bytes load as; 8-bit
// floats load as uint8, as MLX's own loader does.
func mlxDtype(d safetensors.Dtype) (mlx.Dtype, error) {
	switch d {
	case safetensors.Bool:
		return mlx.Bool, nil
	case safetensors.U8, safetensors.F8E5M2, safetensors.F8E4M3, safetensors.F8E8M0, safetensors.F8E4M3FNUZ, safetensors.F8E5M2FNUZ:
		return mlx.Uint8, nil
	case safetensors.I8:
		return mlx.Int8, nil
	case safetensors.I16:
		return mlx.Int16, nil
	case safetensors.U16:
		return mlx.Uint16, nil
	case safetensors.F16:
		return mlx.Float16, nil
	case safetensors.BF16:
		return mlx.Bfloat16, nil
	case safetensors.I32:
		return mlx.Int32, nil
	case safetensors.U32:
		return mlx.Uint32, nil
	case safetensors.F32:
		return mlx.Float32, nil
	case safetensors.C64:
		return mlx.Complex64, nil
	case safetensors.F64:
		return mlx.Float64, nil
	case safetensors.I64:
		return mlx.Int64, nil
	case safetensors.U64:
		return mlx.Uint64, nil
	}
	return 0, fmt.Errorf("loader: MLX has no dtype for %s", d)
}

func intShape(s []int64) []int {
	out := make([]int, len(s))
	for i, d := range s {
		out[i] = int(d)
	}
	return out
}

// pieceSize is how much of a part one worker copies at a time. A part
// larger than this is cut into pieces that idle workers help with, so that
// one large tensor (an embedding, a stacked expert) does not leave the
// other workers waiting at the end of a section.
const pieceSize = 8 << 20

// fileMode is the safetensors read mode of a ReadMode; ReadMap reads the
// parts it cannot map as ReadAuto does.
func fileMode(m ReadMode) safetensors.ReadMode {
	switch m {
	case ReadPread:
		return safetensors.ReadPread
	case ReadMmap:
		return safetensors.ReadMmap
	}
	return safetensors.ReadAuto
}

// fillPart copies part p of f, in pieces of pieceSize bytes, into dst and
// returns the bytes read from the file. Each piece is one
// safetensors.File.ReadPartAt. The calling goroutine copies pieces itself;
// before each one it takes a token from helpers when one is free and starts
// a helper that copies pieces until none is left, so that every
// token-holder is copying and never more goroutines than tokens (plus the
// caller's own).
func fillPart(ctx context.Context, f *safetensors.File, p safetensors.Part, mode ReadMode, dst []byte, helpers chan struct{}) (int64, error) {
	size := p.Size()
	count := (size + pieceSize - 1) / pieceSize
	var (
		next, read atomic.Int64
		mu         sync.Mutex
		first      error
		failed     atomic.Bool
		wg         sync.WaitGroup
	)
	step := func() bool {
		i := next.Add(1) - 1
		if i >= count || failed.Load() {
			return false
		}
		if err := ctx.Err(); err != nil {
			failed.Store(true)
			return false
		}
		p0, p1 := i*pieceSize, min(size, (i+1)*pieceSize)
		n, err := f.ReadPartAt(p, dst[p0:p1], p0, fileMode(mode))
		read.Add(n)
		if err != nil {
			if errors.Is(err, safetensors.ErrChanged) {
				// A file truncated under the mapping.
				err = errors.Join(ErrChanged, err)
			}
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
			failed.Store(true)
			return false
		}
		return true
	}
	for next.Load() < count {
		select {
		case helpers <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-helpers }()
				for step() {
				}
			}()
			continue
		default:
		}
		if !step() {
			break
		}
	}
	wg.Wait()
	if first == nil && failed.Load() {
		first = context.Cause(ctx)
	}
	return read.Load(), first
}

// fill copies rank k of n's part of tp from f into dst on the calling
// goroutine alone and returns the bytes read from the file.
func fill(f *safetensors.File, tp *TensorPlan, n, k int, mode ReadMode, dst []byte) (int64, error) {
	p, err := tp.PartOf(n, k)
	if err != nil {
		return 0, err
	}
	return fillPart(context.Background(), f, p, mode, dst, nil)
}

// direct fills the section's arrays from the files: Workers goroutines
// each fill one tensor at a time, and a large tensor's part is shared
// between its goroutine and whichever workers are idle (see source.fill).
// Each array is allocated at its final size by MLX and written in place, so
// nothing but the shard is ever held.
func (r *run) direct(ctx context.Context, sp *SectionPlan, layer *Layer) error {
	return r.fillSection(ctx, sp, layer, false)
}

// fillSection fills the section's arrays as direct describes: the rank's
// parts, or with whole set every tensor in full.
func (r *run) fillSection(ctx context.Context, sp *SectionPlan, layer *Layer, whole bool) error {
	l := r.l
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		name string
		a    *mlx.Array
		read int64
		err  error
	}
	// A worker holds a token while it fills a tensor; helpers of a large
	// tensor take the tokens idle workers leave, so at most Workers
	// goroutines copy at once.
	tokens := make(chan struct{}, l.opts.Workers)
	jobs := make(chan *TensorPlan)
	results := make(chan result)
	var wg sync.WaitGroup
	for range min(l.opts.Workers, len(sp.Tensors)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tp := range jobs {
				res := result{name: tp.Name}
				tokens <- struct{}{}
				res.a, res.read, res.err = r.fillOne(ctx, sp, tp, whole, tokens)
				<-tokens
				results <- res
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range sp.Tensors {
			select {
			case jobs <- &sp.Tensors[i]:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	var first error
	for res := range results {
		if res.err != nil {
			if first == nil {
				first = res.err
				cancel()
			}
			continue
		}
		layer.Arrays[res.name] = res.a
		layer.BytesRead += res.read
	}
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func (r *run) fillOne(ctx context.Context, sp *SectionPlan, tp *TensorPlan, whole bool, helpers chan struct{}) (*mlx.Array, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, context.Cause(ctx)
	}
	fail := func(err error) (*mlx.Array, int64, error) {
		return nil, 0, &LoadError{Section: sp.Name, Tensor: tp.Name, File: tp.File, Err: err}
	}
	info, f, ok := r.l.dir.Tensor(tp.Name)
	if !ok {
		return fail(fmt.Errorf("not in the checkpoint"))
	}
	dt, err := mlxDtype(tp.Dtype)
	if err != nil {
		return fail(err)
	}
	part, shape := tp.Part, tp.ShardShape
	if whole {
		part, shape = info.Whole(), tp.Shape
	}
	if r.l.opts.Read == ReadMap {
		if rg, ok := part.Contiguous(); ok {
			a, err := mapPart(f, rg.Offset, rg.Length, intShape(shape), dt)
			if err == nil {
				return a, rg.Length, nil
			}
			if !errors.Is(err, errCannotMap) {
				return fail(err)
			}
		}
	}
	var read int64
	a, err := mlx.NewArrayFill(intShape(shape), dt, func(dst []byte) error {
		var err error
		read, err = fillPart(ctx, f, part, r.l.opts.Read, dst, helpers)
		runtime.KeepAlive(f)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return a, read, nil
}
