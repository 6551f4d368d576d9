package safetensors

import "fmt"

// Range is a run of bytes in a file: Length bytes starting at the absolute
// file offset Offset.
type Range struct {
	Offset, Length int64
}

// End returns the offset just past the range.
func (r Range) End() int64 { return r.Offset + r.Length }

// slab describes the bytes of a [start, end) slice of one axis of a
// row-major tensor: Count runs of Length bytes, the first at Offset, each
// Stride bytes after the previous. When the runs touch (Stride == Length) it
// is collapsed to a single run.
type slab struct {
	Offset, Length, Stride, Count int64
}

func (s slab) each(fn func(off, n int64) bool) {
	if s.Length == 0 {
		return
	}
	for i := int64(0); i < s.Count; i++ {
		if !fn(s.Offset+i*s.Stride, s.Length) {
			return
		}
	}
}

func (s slab) bytes() int64 { return s.Length * s.Count }

// axisSlab computes the slab of t's bytes holding indices [start, end) of
// axis.
func (t TensorInfo) axisSlab(axis int, start, end int64) (slab, error) {
	if axis < 0 || axis >= len(t.Shape) {
		return slab{}, &SplitError{Tensor: t.Name, Axis: axis, Dim: -1, Start: start, End: end,
			Detail: fmt.Sprintf("has no axis %d: its shape %v has %d axes", axis, t.Shape, len(t.Shape))}
	}
	dim := t.Shape[axis]
	if start < 0 || end < start || end > dim {
		return slab{}, &SplitError{Tensor: t.Name, Axis: axis, Dim: dim, Start: start, End: end,
			Detail: fmt.Sprintf("axis %d of size %d has no slice [%d, %d)", axis, dim, start, end)}
	}
	// The header was validated, so these products cannot overflow: each is
	// at most the tensor's element count.
	outer := int64(1)
	for _, d := range t.Shape[:axis] {
		outer *= d
	}
	inner := int64(1)
	for _, d := range t.Shape[axis+1:] {
		inner *= d
	}
	bitsPer := int64(t.DType.Bits())
	rowBits := dim * inner * bitsPer
	startBits := start * inner * bitsPer
	lenBits := (end - start) * inner * bitsPer
	if startBits%8 != 0 || lenBits%8 != 0 || (outer > 1 && rowBits%8 != 0) {
		return slab{}, &SplitError{Tensor: t.Name, Axis: axis, Dim: dim, Start: start, End: end,
			Detail: fmt.Sprintf("slice [%d, %d) of axis %d cuts inside a byte of %s", start, end, axis, t.DType)}
	}
	s := slab{Offset: t.Offset + startBits/8, Length: lenBits / 8, Stride: rowBits / 8, Count: outer}
	if s.Length == s.Stride || s.Count <= 1 {
		s = slab{Offset: s.Offset, Length: s.Length * s.Count, Stride: s.Length * s.Count, Count: 1}
	}
	if s.Length == 0 {
		s.Count = 0
	}
	return s, nil
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

// AxisRanges returns the byte ranges of the file holding indices
// [start, end) of the given axis: one range when every axis before it has
// size 1 (or the slice spans whole rows), else one per index of the axes
// before it, in file order, adjacent ranges merged. A per-head split or a
// fused projection's segment is such a slice.
func (t TensorInfo) AxisRanges(axis int, start, end int64) ([]Range, error) {
	s, err := t.axisSlab(axis, start, end)
	if err != nil {
		return nil, err
	}
	out := make([]Range, 0, s.Count)
	s.each(func(off, n int64) bool {
		out = append(out, Range{off, n})
		return true
	})
	return out, nil
}

// PartRanges returns the byte ranges of part k when the tensor is split
// into n equal parts along axis (numpy's np.split(a, n, axis)[k]). It is an
// error when n does not divide the axis, when axis or k is out of range, or
// when a part of a sub-byte dtype would begin or end inside a byte.
func (t TensorInfo) PartRanges(axis, n, k int) ([]Range, error) {
	start, end, err := t.partBounds(axis, n, k)
	if err != nil {
		return nil, err
	}
	return t.AxisRanges(axis, start, end)
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
	start, end, err := t.partBounds(axis, n, 0)
	if err != nil {
		return 0, err
	}
	s, err := t.axisSlab(axis, start, end)
	if err != nil {
		return 0, err
	}
	return s.bytes(), nil
}
