package loader

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// mlxDtype maps a file's dtype to the MLX dtype its bytes load as. 8-bit
// floats load as uint8, as MLX's own loader loads F8_E4M3 and F8_E8M0; it
// refuses the other 8-bit floats and F64, whose bytes load here all the
// same (uint8, float64).
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

// runs calls fn with the file byte ranges of rank k's shard of tp, in the
// order its bytes lie in the shard (row-major over the shard's shape),
// adjacent ranges merged. A replicated tensor is one range.
func (tp *TensorPlan) runs(n, k int, fn func(off, length int64) error) error {
	t := tp.info
	s := tp.Split
	if s.Replicated() {
		if t.Size() == 0 {
			return nil
		}
		return fn(t.Offset, t.Size())
	}
	outer, inner := int64(1), int64(1)
	for _, d := range t.Shape[:s.Axis] {
		outer *= d
	}
	for _, d := range t.Shape[s.Axis+1:] {
		inner *= d
	}
	bits := int64(t.DType.Bits())
	dim := t.Shape[s.Axis]
	row := dim * inner * bits / 8
	var pOff, pLen int64
	for o := int64(0); o < outer; o++ {
		for i := 1; i < len(s.Bounds); i++ {
			part := (s.Bounds[i] - s.Bounds[i-1]) / int64(n)
			start := s.Bounds[i-1] + int64(k)*part
			off := t.Offset + o*row + start*inner*bits/8
			length := part * inner * bits / 8
			if length == 0 {
				continue
			}
			if pLen > 0 && pOff+pLen == off {
				pLen += length
				continue
			}
			if pLen > 0 {
				if err := fn(pOff, pLen); err != nil {
					return err
				}
			}
			pOff, pLen = off, length
		}
	}
	if pLen > 0 {
		return fn(pOff, pLen)
	}
	return nil
}

// Reads in pread mode: a run this long is read on its own; shorter runs
// are gathered into windows of up to preadWindow bytes of the file, read
// at once when the runs fill at least half the window.
const (
	preadDirect = 256 << 10
	preadWindow = 4 << 20
)

// fill copies rank k's shard of tp from f into dst and returns the bytes
// read from the file.
func fill(f *safetensors.File, tp *TensorPlan, n, k int, mode ReadMode, dst []byte) (read int64, err error) {
	if mode == ReadMmap && f.Mapped() {
		// A file truncated under the mapping faults on access; Protect makes
		// that a safetensors.ErrChanged error of this tensor instead of a
		// crash of the process.
		var pos int
		err = f.Protect(func() error {
			data, err := f.Data(tp.Name)
			if err != nil {
				return err
			}
			base := tp.info.Offset
			return tp.runs(n, k, func(off, length int64) error {
				pos += copy(dst[pos:], data[off-base:off-base+length])
				return nil
			})
		})
		if errors.Is(err, safetensors.ErrChanged) {
			err = errors.Join(ErrChanged, err)
		}
		if err == nil {
			f.Release([]safetensors.Range{{Offset: tp.info.Offset, Length: tp.info.Size()}})
		}
		return int64(pos), err
	}
	var pos int64
	var win []safetensors.Range
	var buf []byte
	flush := func() error {
		if len(win) == 0 {
			return nil
		}
		first, last := win[0], win[len(win)-1]
		span := last.End() - first.Offset
		var want int64
		for _, r := range win {
			want += r.Length
		}
		if want*2 >= span && len(win) > 1 {
			if int64(cap(buf)) < span {
				buf = make([]byte, span)
			}
			b := buf[:span]
			if _, err := f.ReadRangesAt([]safetensors.Range{{Offset: first.Offset, Length: span}}, b); err != nil {
				return err
			}
			read += span
			for _, r := range win {
				pos += int64(copy(dst[pos:], b[r.Offset-first.Offset:r.End()-first.Offset]))
			}
		} else {
			for _, r := range win {
				if _, err := f.ReadRangesAt([]safetensors.Range{r}, dst[pos:pos+r.Length]); err != nil {
					return err
				}
				pos += r.Length
				read += r.Length
			}
		}
		win = win[:0]
		return nil
	}
	err = tp.runs(n, k, func(off, length int64) error {
		if length >= preadDirect {
			if err := flush(); err != nil {
				return err
			}
			win = append(win, safetensors.Range{Offset: off, Length: length})
			return flush()
		}
		if len(win) > 0 && off+length-win[0].Offset > preadWindow {
			if err := flush(); err != nil {
				return err
			}
		}
		win = append(win, safetensors.Range{Offset: off, Length: length})
		return nil
	})
	if err == nil {
		err = flush()
	}
	return read, err
}

// direct fills the section's arrays from the files, Workers tensors at a
// time. Each array is allocated at its final size by MLX and written in
// place, so nothing but the shard is ever held.
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
	jobs := make(chan *TensorPlan)
	results := make(chan result)
	var wg sync.WaitGroup
	for range min(l.opts.Workers, len(sp.Tensors)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tp := range jobs {
				res := result{name: tp.Name}
				res.a, res.read, res.err = r.fillOne(ctx, sp, tp)
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

func (r *run) fillOne(ctx context.Context, sp *SectionPlan, tp *TensorPlan) (*mlx.Array, int64, error) {
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
	var read int64
	a, err := mlx.NewArrayFill(intShape(tp.ShardShape), dt, func(dst []byte) error {
		var err error
		read, err = fill(f, tp, r.l.plan.WorldSize, r.l.plan.Rank, r.l.opts.Read, dst)
		runtime.KeepAlive(f)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return a, read, nil
}
