package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// verify checks every array against the checkpoint: it reads each tensor
// whole with package safetensors (pread, not the loader's path), cuts this
// rank's part out in Go from the plan's split, and compares shapes and
// bytes. It reports every mismatch, joined.
func verify(dir string, p *loader.Plan, arrays map[string]*mlx.Array) error {
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	n, k := p.WorldSize, p.Rank
	if p.Strategy == loader.ChunkedEval {
		n, k = 1, 0
	}
	var errs []error
	seen := 0
	for _, s := range p.Sections {
		for _, tp := range s.Tensors {
			a, ok := arrays[tp.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("tensor %q: not loaded", tp.Name))
				continue
			}
			seen++
			if err := verifyOne(d, &tp, n, k, a); err != nil {
				errs = append(errs, err)
			}
			if len(errs) >= 5 {
				return errors.Join(append(errs, errors.New("stopped after 5 mismatches"))...)
			}
		}
	}
	if seen != len(arrays) {
		errs = append(errs, fmt.Errorf("%d arrays loaded, %d planned", len(arrays), seen))
	}
	return errors.Join(errs...)
}

func verifyOne(d *safetensors.Dir, tp *loader.TensorPlan, n, k int, a *mlx.Array) error {
	info, f, ok := d.Tensor(tp.Name)
	if !ok {
		return fmt.Errorf("tensor %q: not in the checkpoint", tp.Name)
	}
	shape := tp.Shape
	if n > 1 && !tp.Split.Replicated() {
		shape = tp.ShardShape
	}
	got := make([]int64, 0, a.Ndim())
	for _, d := range a.Shape() {
		got = append(got, int64(d))
	}
	if !slices.Equal(got, shape) {
		return fmt.Errorf("tensor %q: shape %v, want %v", tp.Name, got, shape)
	}
	full := make([]byte, info.Size())
	if _, err := f.ReadRangesPread([]safetensors.Range{{Offset: info.Offset, Length: info.Size()}}, full); err != nil {
		return fmt.Errorf("tensor %q: %w", tp.Name, err)
	}
	want := full
	if n > 1 && !tp.Split.Replicated() {
		want = part(full, info, tp.Split, n, k)
	}
	have, err := a.Bytes()
	if err != nil {
		return fmt.Errorf("tensor %q: %w", tp.Name, err)
	}
	if !bytes.Equal(have, want) {
		return fmt.Errorf("tensor %q: %d bytes differ from the file's part %d of %d (first at byte %d)",
			tp.Name, len(have), k, n, firstDiff(have, want))
	}
	return nil
}

// part cuts rank k's piece of n out of a whole tensor's bytes: along the
// split axis, each fused segment [Bounds[i-1], Bounds[i]) gives its k-th
// n-th, and the pieces of every segment follow one another, for every
// index of the axes before the split (row-major order).
func part(full []byte, t safetensors.TensorInfo, s loader.Split, n, k int) []byte {
	outer, inner := int64(1), int64(1)
	for _, d := range t.Shape[:s.Axis] {
		outer *= d
	}
	for _, d := range t.Shape[s.Axis+1:] {
		inner *= d
	}
	bits := int64(t.DType.Bits())
	rowBytes := t.Shape[s.Axis] * inner * bits / 8
	var out []byte
	for o := range outer {
		row := full[o*rowBytes : (o+1)*rowBytes]
		for i := 1; i < len(s.Bounds); i++ {
			size := (s.Bounds[i] - s.Bounds[i-1]) / int64(n)
			lo := (s.Bounds[i-1] + int64(k)*size) * inner * bits / 8
			out = append(out, row[lo:lo+size*inner*bits/8]...)
		}
	}
	return out
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
