package safetensors

import (
	"fmt"
	"iter"
)

// Range is a run of bytes in a file: Length bytes starting at the absolute
// file offset Offset.
type Range struct {
	Offset, Length int64
}

// End returns the offset just past the range.
func (r Range) End() int64 { return r.Offset + r.Length }

// Slice is the indices [Start, End) of one axis of a tensor.
type Slice struct {
	Start, End int64
}

// Part says where some slices of one axis of a tensor lie in its file: a
// rank's piece of a split tensor, of every segment of a fused projection, a
// range of heads. The part's bytes are those of the slices concatenated
// along the axis, in row-major order: for every index of the axes before
// the sliced one (a row of the tensor), the slices' bytes of that row in
// the order given. A Part lists no runs (a stacked expert split on its last
// axis has millions); Ranges yields them.
//
// The zero Part is empty. A Part is only meaningful for the file whose
// TensorInfo made it.
type Part struct {
	base    int64 // file offset of row 0
	row     int64 // bytes of a row of the tensor
	rows    int64
	rowPart int64 // bytes of the part in one row
	segs    []segment
}

// segment is one slice's bytes in a row: length bytes at offset file of
// the tensor's row, at offset part of the part's row.
type segment struct{ file, part, length int64 }

// Whole returns the Part that is the whole tensor: one range.
func (t TensorInfo) Whole() Part {
	p := Part{base: t.Offset, row: t.Size(), rows: 1, rowPart: t.Size()}
	if t.Size() > 0 {
		p.segs = []segment{{0, 0, t.Size()}}
	}
	return p
}

// Part returns where slices of axis lie in the tensor's file. It is a
// *SplitError when the axis does not exist, when a slice is not inside the
// axis, or when a slice of a sub-byte dtype would begin or end inside a
// byte. Empty slices add nothing; no slices make an empty Part.
func (t TensorInfo) Part(axis int, slices ...Slice) (Part, error) {
	if axis < 0 || axis >= len(t.Shape) {
		return Part{}, &SplitError{Tensor: t.Name, Axis: axis, Dim: -1,
			Detail: fmt.Sprintf("has no axis %d: its shape %v has %d axes", axis, t.Shape, len(t.Shape))}
	}
	dim := t.Shape[axis]
	// The header was validated, so these products cannot overflow: each is
	// at most the tensor's element count (times its bits).
	outer, inner := int64(1), int64(1)
	for _, d := range t.Shape[:axis] {
		outer *= d
	}
	for _, d := range t.Shape[axis+1:] {
		inner *= d
	}
	bits := inner * int64(t.Dtype.Bits()) // bits per index of the axis
	p := Part{base: t.Offset, rows: outer}
	for _, s := range slices {
		fail := func(detail string) (Part, error) {
			return Part{}, &SplitError{Tensor: t.Name, Axis: axis, Dim: dim, Start: s.Start, End: s.End, Detail: detail}
		}
		if s.Start < 0 || s.End < s.Start || s.End > dim {
			return fail(fmt.Sprintf("axis %d of size %d has no slice [%d, %d)", axis, dim, s.Start, s.End))
		}
		if s.Start*bits%8 != 0 || (s.End-s.Start)*bits%8 != 0 || (outer > 1 && dim*bits%8 != 0) {
			return fail(fmt.Sprintf("slice [%d, %d) of axis %d cuts inside a byte of %s", s.Start, s.End, axis, t.Dtype))
		}
		if n := (s.End - s.Start) * bits / 8; n > 0 {
			p.segs = append(p.segs, segment{file: s.Start * bits / 8, part: p.rowPart, length: n})
			p.rowPart += n
		}
	}
	p.row = dim * bits / 8
	return p, nil
}

// Size returns the part's length in bytes.
func (p Part) Size() int64 { return p.rows * p.rowPart }

// visit calls fn with the file byte runs that hold bytes [p0, p1) of the
// part, in order, adjacent runs merged; pos is where a run's first byte
// lies in the part. It stops at the first false.
func (p Part) visit(p0, p1 int64, fn func(off, length, pos int64) bool) {
	if p1 <= p0 || p.rowPart == 0 {
		return
	}
	var pOff, pLen, pPos int64
	for o := p0 / p.rowPart; o < p.rows && o*p.rowPart < p1; o++ {
		for _, sg := range p.segs {
			start := o*p.rowPart + sg.part
			lo, hi := max(p0, start), min(p1, start+sg.length)
			if hi <= lo {
				continue
			}
			off := p.base + o*p.row + sg.file + lo - start
			if pLen > 0 && pOff+pLen == off {
				pLen += hi - lo
				continue
			}
			if pLen > 0 && !fn(pOff, pLen, pPos) {
				return
			}
			pOff, pLen, pPos = off, hi-lo, lo
		}
	}
	if pLen > 0 {
		fn(pOff, pLen, pPos)
	}
}

// Ranges yields the file byte ranges of the part, in the order its bytes
// lie in the part, adjacent ranges merged.
func (p Part) Ranges() iter.Seq[Range] {
	return func(yield func(Range) bool) {
		p.visit(0, p.Size(), func(off, length, _ int64) bool { return yield(Range{off, length}) })
	}
}

// Contiguous returns the part's one range when it is a single run of the
// file (a whole tensor, a split of the leading axis), and false otherwise
// or when it is empty.
func (p Part) Contiguous() (Range, bool) {
	var r Range
	runs := 0
	p.visit(0, p.Size(), func(off, length, _ int64) bool {
		r = Range{off, length}
		runs++
		return runs < 2
	})
	return r, runs == 1
}

// strided reports whether the part is one run per row with gaps between
// them (one slice of an axis after the first, the rows of a tensor split
// on its last axis, say): run i then lies p.row bytes after run i-1.
func (p Part) strided() bool {
	return len(p.segs) == 1 && p.rowPart < p.row && p.rows >= 2
}

// at returns the file offset of byte pos of the part.
func (p Part) at(pos int64) int64 {
	o, in := pos/p.rowPart, pos%p.rowPart
	for _, sg := range p.segs {
		if in < sg.part+sg.length {
			return p.base + o*p.row + sg.file + in - sg.part
		}
	}
	return p.base + o*p.row // unreachable for pos < Size
}

// span returns the file bytes from the first to the last byte of bytes
// [p0, p1) of the part (which may come in another order).
func (p Part) span(p0, p1 int64) Range {
	if p1 <= p0 {
		return Range{}
	}
	lo, hi := p.at(p0), p.at(p0)+1
	if p1-p0 > 1 {
		// The first and last rows bound the file span; within a row the
		// segments may be in any order.
		for _, pos := range []int64{p0, p1 - 1} {
			o := pos / p.rowPart
			for _, sg := range p.segs {
				start := o*p.rowPart + sg.part
				a, b := max(p0, start), min(p1, start+sg.length)
				if b > a {
					off := p.base + o*p.row + sg.file + a - start
					lo, hi = min(lo, off), max(hi, off+b-a)
				}
			}
		}
	}
	return Range{lo, hi - lo}
}

// exactRunLimit bounds the runs Pages walks one by one; beyond it, it
// estimates from the first runs.
const exactRunLimit = 1 << 16

// Pages estimates the bytes of the storage pages of the given size that a
// cold read of the part pulls in: per slice, one run per row; runs less
// than a page apart cover every page between them, runs further apart
// touch their own pages only. It is at most the pages of the part's span.
func (p Part) Pages(page int64) int64 {
	if p.Size() == 0 || page <= 0 {
		return 0
	}
	sp := p.span(0, p.Size())
	whole := spanPages(sp.Offset, sp.Length, page)
	var total int64
	for _, sg := range p.segs {
		first := p.base + sg.file
		if p.row-sg.length < page {
			total += spanPages(first, (p.rows-1)*p.row+sg.length, page)
			continue
		}
		runs := min(p.rows, exactRunLimit)
		var pages int64
		for i := range runs {
			pages += spanPages(first+i*p.row, sg.length, page)
		}
		total += pages * p.rows / runs
	}
	return min(total, whole)
}

// spanPages is the size of the pages that [off, off+n) touches.
func spanPages(off, n, page int64) int64 {
	if n <= 0 {
		return 0
	}
	first, last := off/page, (off+n-1)/page
	return (last - first + 1) * page
}

func (t TensorInfo) partBounds(axis, n, k int) (int64, int64, error) {
	if axis < 0 || axis >= len(t.Shape) {
		return 0, 0, &SplitError{Tensor: t.Name, Axis: axis, Dim: -1, N: n,
			Detail: fmt.Sprintf("has no axis %d: its shape %v has %d axes", axis, t.Shape, len(t.Shape))}
	}
	dim := t.Shape[axis]
	if n <= 0 || k < 0 || k >= n {
		return 0, 0, &SplitError{Tensor: t.Name, Axis: axis, Dim: dim, N: n,
			Detail: fmt.Sprintf("has no part %d of %d", k, n)}
	}
	if dim%int64(n) != 0 {
		return 0, 0, &SplitError{Tensor: t.Name, Axis: axis, Dim: dim, N: n,
			Detail: fmt.Sprintf("axis %d of size %d does not split into %d equal parts", axis, dim, n)}
	}
	part := dim / int64(n)
	return int64(k) * part, int64(k+1) * part, nil
}

// splitPart is part k of n equal parts along axis.
func (t TensorInfo) splitPart(axis, n, k int) (Part, error) {
	start, end, err := t.partBounds(axis, n, k)
	if err != nil {
		return Part{}, err
	}
	p, err := t.Part(axis, Slice{start, end})
	if se, ok := err.(*SplitError); ok {
		se.N = n
	}
	return p, err
}

// AxisRanges returns the byte ranges of the file holding indices
// [start, end) of the given axis (see Part): one range when every axis
// before it has size 1 (or the slice spans whole rows), else one per index
// of the axes before it, in file order, adjacent ranges merged.
func (t TensorInfo) AxisRanges(axis int, start, end int64) ([]Range, error) {
	p, err := t.Part(axis, Slice{start, end})
	if err != nil {
		return nil, err
	}
	return collect(p), nil
}

// PartRanges returns the byte ranges of part k when the tensor is split
// into n equal parts along axis (numpy's np.split(a, n, axis)[k]). It is an
// error when n does not divide the axis, when axis or k is out of range, or
// when a part of a sub-byte dtype would begin or end inside a byte.
func (t TensorInfo) PartRanges(axis, n, k int) ([]Range, error) {
	p, err := t.splitPart(axis, n, k)
	if err != nil {
		return nil, err
	}
	return collect(p), nil
}

func collect(p Part) []Range {
	out := []Range{}
	for r := range p.Ranges() {
		out = append(out, r)
	}
	return out
}

// PartShape returns the shape of one of n equal parts along axis.
func (t TensorInfo) PartShape(axis, n int) ([]int64, error) {
	start, end, err := t.partBounds(axis, n, 0)
	if err != nil {
		return nil, err
	}
	shape := append([]int64(nil), t.Shape...)
	shape[axis] = end - start
	return shape, nil
}

// PartSize returns the byte size of one of n equal parts along axis.
func (t TensorInfo) PartSize(axis, n int) (int64, error) {
	p, err := t.splitPart(axis, n, 0)
	if err != nil {
		return 0, err
	}
	return p.Size(), nil
}
