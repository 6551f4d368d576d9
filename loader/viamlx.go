package loader

import (
	"context"
	"fmt"

	"github.com/mlxdist/mlxdist/mlx"
)

// viaMLX loads a section with MLX's own safetensors loader: the lazy
// arrays of each file (kept across sections, only this section's
// evaluated). ChunkedEval evaluates them whole. EvalShardEval builds, for
// each split tensor, the contiguous copy of the rank's slices of the lazy
// tensor, lets go of the tensor itself, and evaluates the section's
// replicated tensors and copies in one graph: MLX reads the section's
// tensors in parallel, and each full tensor is freed as soon as its copy is
// made, so no slice pins a full tensor and none outlives the evaluation.
func (r *run) viaMLX(ctx context.Context, sp *SectionPlan, layer *Layer) error {
	full := make([]*mlx.Array, 0, len(sp.Tensors))
	defer func() {
		// On an error before shardEval, what was taken so far.
		mlx.FreeAll(full...)
	}()
	for _, tp := range sp.Tensors {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := r.lazyFile(tp.File)
		if err != nil {
			return &LoadError{Section: sp.Name, Tensor: tp.Name, File: tp.File, Err: err}
		}
		a, ok := m[tp.Name]
		if !ok {
			return &LoadError{Section: sp.Name, Tensor: tp.Name, File: tp.File, Err: r.notInFile(tp.Name, tp.File)}
		}
		delete(m, tp.Name) // ours now
		r.taken[tp.Name] = sp.Name
		full = append(full, a)
		layer.BytesRead += tp.Bytes
	}
	taken := full
	full = nil // shardEval frees them
	return r.shardEval(ctx, sp, layer, taken)
}

// ownFill loads a section of EvalShardEval or ChunkedEval with the reader
// Direct uses: every tensor whole, filled in parallel into arrays MLX
// allocates uninitialised, then sharded and evaluated as viaMLX does.
func (r *run) ownFill(ctx context.Context, sp *SectionPlan, layer *Layer) error {
	whole := &Layer{Section: sp.Section, Arrays: make(map[string]*mlx.Array, len(sp.Tensors))}
	if err := r.fillSection(ctx, sp, whole, true); err != nil {
		whole.Free()
		return err
	}
	full := make([]*mlx.Array, len(sp.Tensors))
	for i, tp := range sp.Tensors {
		full[i] = whole.Arrays[tp.Name]
	}
	layer.BytesRead += whole.BytesRead
	return r.shardEval(ctx, sp, layer, full)
}

// shardEval takes the section's full tensors (in the order of sp.Tensors;
// it frees them all, whatever happens) and puts into layer the rank's
// arrays: for EvalShardEval the contiguous copy of the rank's slices of
// each split tensor, evaluated in one graph, each full tensor freed as soon
// as its copy is made.
func (r *run) shardEval(ctx context.Context, sp *SectionPlan, layer *Layer, full []*mlx.Array) error {
	defer func() { mlx.FreeAll(full...) }()
	shard := r.l.plan.Strategy == EvalShardEval && r.l.plan.WorldSize > 1
	out := make([]*mlx.Array, len(full))
	for i, tp := range sp.Tensors {
		if !shard || tp.Split.Replicated() {
			out[i], full[i] = full[i], nil
			layer.Arrays[tp.Name] = out[i]
			continue
		}
		c, err := r.slice(full[i], &tp)
		if err != nil {
			return &LoadError{Section: sp.Name, Tensor: tp.Name, File: tp.File, Err: err}
		}
		// The copy's graph holds the lazy tensor; our handle would keep its
		// buffer alive after the evaluation.
		full[i].Free()
		full[i] = nil
		out[i] = c
		layer.Arrays[tp.Name] = c
	}
	if err := mlx.Eval(out...); err != nil {
		return &LoadError{Section: sp.Name, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return mlx.ClearCache()
}

// slice builds the contiguous copy of this rank's part of a: its piece of
// every fused segment along the split axis, concatenated.
func (r *run) slice(a *mlx.Array, tp *TensorPlan) (*mlx.Array, error) {
	n, k := int64(r.l.plan.WorldSize), int64(r.l.plan.Rank)
	s := tp.Split
	var parts []*mlx.Array
	defer func() { mlx.FreeAll(parts...) }()
	for i := 1; i < len(s.Bounds); i++ {
		part := (s.Bounds[i] - s.Bounds[i-1]) / n
		start := make([]int, len(tp.Shape))
		stop := intShape(tp.Shape)
		start[s.Axis] = int(s.Bounds[i-1] + k*part)
		stop[s.Axis] = start[s.Axis] + int(part)
		p, err := mlx.Slice(a, start, stop, nil)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	if len(parts) == 1 {
		return mlx.Contiguous(parts[0])
	}
	cat, err := mlx.Concatenate(parts, s.Axis)
	if err != nil {
		return nil, err
	}
	defer cat.Free()
	return mlx.Contiguous(cat)
}

// lazyFile returns MLX's lazy arrays of a file, loading its header once per
// iteration.
func (r *run) lazyFile(path string) (map[string]*mlx.Array, error) {
	if m, ok := r.lazy[path]; ok {
		return m, nil
	}
	m, _, err := mlx.LoadSafetensors(path)
	if err != nil {
		return nil, err
	}
	r.lazy[path] = m
	r.listed[path] = len(m)
	return m, nil
}

// notInFile says why MLX's arrays of a file lack a tensor the plan reads
// from it: taken by an earlier section, or not among the names MLX's
// loader listed.
func (r *run) notInFile(name, path string) error {
	if sec, ok := r.taken[name]; ok {
		return fmt.Errorf("%w: section %s already took it", errNotInFile, sec)
	}
	return fmt.Errorf("%w: MLX's loader listed %d tensors in it", errNotInFile, r.listed[path])
}
