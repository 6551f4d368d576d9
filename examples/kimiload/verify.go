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
		var err error
		if want, err = part(full, info, tp.Split, n, k); err != nil {
			return fmt.Errorf("tensor %q: %w", tp.Name, err)
		}
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

// part cuts rank k's piece of n out of a whole tensor's bytes: the bytes
// of the file ranges safetensors gives for the plan's split, taken from the
// tensor read whole.
func part(full []byte, t safetensors.TensorInfo, s loader.Split, n, k int) ([]byte, error) {
	p, err := t.Part(s.Axis, s.Slices(n, k)...)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, p.Size())
	for r := range p.Ranges() {
		out = append(out, full[r.Offset-t.Offset:r.End()-t.Offset]...)
	}
	return out, nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
