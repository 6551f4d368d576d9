package loader

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// mlxDtype maps a file's dtype to the MLX dtype its bytes load as; 8-bit
// floats load as uint8, as MLX's own loader does.
func mlxDtype(d safetensors.DType) (mlx.Dtype, error) {
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

// layout says where rank k's part of a tensor lies in its file, without
// listing its runs (a stacked expert split on its last axis has millions):
// the part is rows rows of rowPart bytes; row o of the part is the
// segments' bytes of row o of the tensor, which starts at base+o*row.
type layout struct {
	base, row, rowPart, rows int64
	segs                     []segment
}

// segment is one fused segment's piece of a row: length bytes at file
// offset file in the tensor's row, at part in the part's row.
type segment struct{ file, part, length int64 }

func (tp *TensorPlan) layout(n, k int) layout {
	t := tp.info
	s := tp.Split
	if s.Replicated() {
		return layout{base: t.Offset, row: t.Size(), rowPart: t.Size(), rows: 1, segs: []segment{{0, 0, t.Size()}}}
	}
	outer, inner := int64(1), int64(1)
	for _, d := range t.Shape[:s.Axis] {
		outer *= d
	}
	for _, d := range t.Shape[s.Axis+1:] {
		inner *= d
	}
	bits := int64(t.DType.Bits())
	l := layout{base: t.Offset, row: t.Shape[s.Axis] * inner * bits / 8, rows: outer}
	for i := 1; i < len(s.Bounds); i++ {
		part := (s.Bounds[i] - s.Bounds[i-1]) / int64(n)
		start := s.Bounds[i-1] + int64(k)*part
		if length := part * inner * bits / 8; length > 0 {
			l.segs = append(l.segs, segment{start * inner * bits / 8, l.rowPart, length})
			l.rowPart += length
		}
	}
	return l
}

// size is the part's length in bytes.
func (l *layout) size() int64 { return l.rows * l.rowPart }

// visit calls fn with the file byte runs that hold bytes [p0, p1) of the
// part, in order, adjacent runs merged; pos is where a run's first byte
// lands in the part.
func (l *layout) visit(p0, p1 int64, fn func(off, length, pos int64) error) error {
	if p1 <= p0 || l.rowPart == 0 {
		return nil
	}
	var pOff, pLen, pPos int64
	for o := p0 / l.rowPart; o < l.rows && o*l.rowPart < p1; o++ {
		for _, sg := range l.segs {
			start := o*l.rowPart + sg.part
			lo, hi := max(p0, start), min(p1, start+sg.length)
			if hi <= lo {
				continue
			}
			off := l.base + o*l.row + sg.file + lo - start
			if pLen > 0 && pOff+pLen == off {
				pLen += hi - lo
				continue
			}
			if pLen > 0 {
				if err := fn(pOff, pLen, pPos); err != nil {
					return err
				}
			}
			pOff, pLen, pPos = off, hi-lo, lo
		}
	}
	if pLen > 0 {
		return fn(pOff, pLen, pPos)
	}
	return nil
}

var errStop = errors.New("stop")

// oneRange returns the file offset of the part when it is one contiguous
// byte range of the file.
func (l *layout) oneRange() (int64, bool) {
	var off int64
	runs := 0
	_ = l.visit(0, l.size(), func(o, _, _ int64) error {
		off = o
		if runs++; runs > 1 {
			return errStop
		}
		return nil
	})
	return off, runs == 1
}

// runs calls fn with the file byte ranges of rank k's shard of tp, in the
// order its bytes lie in the shard (row-major over the shard's shape),
// adjacent ranges merged. A replicated tensor is one range.
func (tp *TensorPlan) runs(n, k int, fn func(off, length int64) error) error {
	l := tp.layout(n, k)
	return l.visit(0, l.size(), func(off, length, _ int64) error { return fn(off, length) })
}

// Ranges yields the file byte ranges of this rank's part of tp (a tensor
// of p), in the order its bytes lie in the part, adjacent ranges merged:
// what the Direct strategy reads for it. It lets a tool copy or prefetch
// exactly a rank's bytes without MLX.
func (p *Plan) Ranges(tp *TensorPlan) iter.Seq[safetensors.Range] {
	return func(yield func(safetensors.Range) bool) {
		_ = tp.runs(p.WorldSize, p.Rank, func(off, length int64) error {
			if !yield(safetensors.Range{Offset: off, Length: length}) {
				return errStop
			}
			return nil
		})
	}
}

// Reads in pread mode: a run this long is read on its own; shorter runs
// are gathered into windows of up to preadWindow bytes of the file, read
// at once when the runs fill at least half the window.
const (
	preadDirect = 256 << 10
	preadWindow = 4 << 20
)

// pieceSize is how much of a part one worker copies at a time. A part
// larger than this is cut into pieces that idle workers help with, so that
// one large tensor (an embedding, a stacked expert) does not leave the
// other workers waiting at the end of a section.
const pieceSize = 8 << 20

// span is one byte run of a rank's part: length bytes at file offset off,
// which land at pos in the part.
type span struct{ off, length, pos int64 }

// source is where a part's bytes come from: the file, and in mmap and
// auto modes the tensor's bytes in the file's mapping (data, which starts
// at file offset base).
type source struct {
	f    *safetensors.File
	mode ReadMode
	data []byte
	base int64
}

var windowPool = sync.Pool{New: func() any { b := make([]byte, preadWindow); return &b }}

// copyPiece copies bytes [p0, p1) of the part laid out as l from src into
// dst (the whole part) and returns the bytes read from the file.
func (src *source) copyPiece(l *layout, p0, p1 int64, dst []byte) (read int64, err error) {
	if src.data != nil {
		lo, hi := int64(-1), int64(0)
		// A file truncated under the mapping faults on access; Protect makes
		// that a safetensors.ErrChanged error of this tensor instead of a
		// crash of the process.
		err := src.f.Protect(func() error {
			return l.visit(p0, p1, func(off, length, pos int64) error {
				if src.mode == ReadAuto && length >= preadDirect {
					if _, err := src.f.ReadRangesPread([]safetensors.Range{{Offset: off, Length: length}}, dst[pos:pos+length]); err != nil {
						return err
					}
					read += length
					return nil
				}
				read += int64(copy(dst[pos:pos+length], src.data[off-src.base:off-src.base+length]))
				if lo < 0 {
					lo = off
				}
				hi = off + length
				return nil
			})
		})
		if errors.Is(err, safetensors.ErrChanged) {
			err = errors.Join(ErrChanged, err)
		}
		if lo >= 0 && err == nil {
			// The copied pages leave the process's mapping: what stays
			// resident is the shard, not the shard plus the file.
			src.f.Release([]safetensors.Range{{Offset: lo, Length: hi - lo}})
		}
		return read, err
	}
	var win []span
	flush := func() error {
		if len(win) == 0 {
			return nil
		}
		first, last := win[0], win[len(win)-1]
		span := last.off + last.length - first.off
		var want int64
		for _, r := range win {
			want += r.length
		}
		if want*2 >= span && len(win) > 1 {
			bp := windowPool.Get().(*[]byte)
			defer windowPool.Put(bp)
			if int64(cap(*bp)) < span {
				*bp = make([]byte, span)
			}
			b := (*bp)[:span]
			if _, err := src.f.ReadRangesPread([]safetensors.Range{{Offset: first.off, Length: span}}, b); err != nil {
				return err
			}
			read += span
			for _, r := range win {
				copy(dst[r.pos:r.pos+r.length], b[r.off-first.off:r.off-first.off+r.length])
			}
		} else {
			for _, r := range win {
				if _, err := src.f.ReadRangesPread([]safetensors.Range{{Offset: r.off, Length: r.length}}, dst[r.pos:r.pos+r.length]); err != nil {
					return err
				}
				read += r.length
			}
		}
		win = win[:0]
		return nil
	}
	err = l.visit(p0, p1, func(off, length, pos int64) error {
		sp := span{off, length, pos}
		if length >= preadDirect {
			if err := flush(); err != nil {
				return err
			}
			win = append(win, sp)
			return flush()
		}
		if len(win) > 0 && off+length-win[0].off > preadWindow {
			if err := flush(); err != nil {
				return err
			}
		}
		win = append(win, sp)
		return nil
	})
	if err != nil {
		return read, err
	}
	return read, flush()
}

// fill copies a part, in pieces of pieceSize bytes, into dst and returns
// the bytes read from the file. The calling goroutine copies pieces
// itself; before each one it takes a token from helpers when one is free
// and starts a helper that copies pieces until none is left, so that every
// token-holder is copying and never more goroutines than tokens (plus the
// caller's own).
func (src *source) fill(ctx context.Context, l *layout, dst []byte, helpers chan struct{}) (int64, error) {
	size := l.size()
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
		n, err := src.copyPiece(l, i*pieceSize, min(size, (i+1)*pieceSize), dst)
		read.Add(n)
		if err != nil {
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

// fill copies rank k's part of tp from f into dst on the calling goroutine
// alone and returns the bytes read from the file.
func fill(f *safetensors.File, tp *TensorPlan, n, k int, mode ReadMode, dst []byte) (int64, error) {
	src := &source{f: f, mode: mode}
	if (mode == ReadMmap || mode == ReadAuto) && f.Mapped() {
		var err error
		if src.data, err = f.Data(tp.Name); err != nil {
			return 0, err
		}
		src.base = tp.info.Offset
	}
	l := tp.layout(n, k)
	return src.fill(context.Background(), &l, dst, nil)
}

// direct fills the section's arrays from the files: Workers goroutines
// each fill one tensor at a time, and a large tensor's part is shared
// between its goroutine and whichever workers are idle (see source.fill).
// Each array is allocated at its final size by MLX and written in place, so
// nothing but the shard is ever held.
func (r *run) direct(ctx context.Context, sp *SectionPlan, layer *Layer) error {
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
				res.a, res.read, res.err = r.fillOne(ctx, sp, tp, tokens)
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

func (r *run) fillOne(ctx context.Context, sp *SectionPlan, tp *TensorPlan, helpers chan struct{}) (*mlx.Array, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, context.Cause(ctx)
	}
	fail := func(err error) (*mlx.Array, int64, error) {
		return nil, 0, &LoadError{Section: sp.Name, Tensor: tp.Name, File: tp.File, Err: err}
	}
	_, f, ok := r.l.dir.Tensor(tp.Name)
	if !ok {
		return fail(fmt.Errorf("not in the checkpoint"))
	}
	dt, err := mlxDtype(tp.DType)
	if err != nil {
		return fail(err)
	}
	lay := tp.layout(r.l.plan.WorldSize, r.l.plan.Rank)
	if r.l.opts.Read == ReadMap {
		if off, ok := lay.oneRange(); ok {
			a, err := mapPart(f, off, lay.size(), intShape(tp.ShardShape), dt)
			if err == nil {
				return a, lay.size(), nil
			}
			if !errors.Is(err, errCannotMap) {
				return fail(err)
			}
		}
	}
	mode := r.l.opts.Read
	if mode == ReadMap {
		mode = ReadAuto // for the parts that are not one range
	}
	src := &source{f: f, mode: mode}
	if (src.mode == ReadMmap || src.mode == ReadAuto) && f.Mapped() {
		if src.data, err = f.Data(tp.Name); err != nil {
			return fail(err)
		}
		src.base = tp.info.Offset
	}
	var read int64
	a, err := mlx.NewArrayFill(intShape(tp.ShardShape), dt, func(dst []byte) error {
		var err error
		read, err = src.fill(ctx, &lay, dst, helpers)
		runtime.KeepAlive(f)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return a, read, nil
}
