package loader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mlxdist/mlxdist/safetensors"
)

// ShardStampName is the file Reshard writes last into a rank's checkpoint;
// Open reads it to load that checkpoint as the rank's shard.
const ShardStampName = "mlxdist-shard.json"

// ShardStamp describes a checkpoint that holds one rank's shard of another.
type ShardStamp struct {
	Rank      int    `json:"rank"`
	WorldSize int    `json:"world_size"`
	Rules     string `json:"rules"`
	Source    string `json:"source"`
	Tensors   int    `json:"tensors"`
	Bytes     int64  `json:"bytes"`
}

// ErrShardMismatch is returned when a resharded checkpoint is opened for a
// rank or world size other than the one it was written for.
var ErrShardMismatch = errors.New("loader: the checkpoint holds another rank's shard")

// ReadShardStamp returns the stamp of a resharded checkpoint directory, or
// nil when dir is an ordinary checkpoint.
func ReadShardStamp(dir string) (*ShardStamp, error) {
	b, err := os.ReadFile(filepath.Join(dir, ShardStampName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	var s ShardStamp
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("loader: %s: %w", filepath.Join(dir, ShardStampName), err)
	}
	if s.WorldSize < 1 || s.Rank < 0 || s.Rank >= s.WorldSize {
		return nil, fmt.Errorf("loader: %s: rank %d of %d is not a rank", filepath.Join(dir, ShardStampName), s.Rank, s.WorldSize)
	}
	return &s, nil
}

// presharded adapts the options of a load from a resharded checkpoint: the
// files already hold this rank's parts, so every tensor is read whole.
func presharded(dir string, o PlanOptions) (PlanOptions, error) {
	s, err := ReadShardStamp(dir)
	if err != nil || s == nil {
		return o, err
	}
	ws := max(o.WorldSize, 1)
	if s.Rank != o.Rank || s.WorldSize != ws {
		return o, fmt.Errorf("%w: %s holds rank %d of %d, this is rank %d of %d", ErrShardMismatch, dir, s.Rank, s.WorldSize, o.Rank, ws)
	}
	o.Rules = &RuleSet{Name: "presharded " + s.Rules}
	return o, nil
}

// Reshard writes rank o.Rank's shard of the checkpoint at src, as o's rules
// split it for o.WorldSize ranks, to the directory dst: every tensor cut to
// the rank's part (replicated tensors whole), in files grouped as the
// source's are, with model.safetensors.index.json, the source's other files
// (config.json, the tokenizer) and a ShardStampName stamp, written last.
//
// A node that keeps only its shard stores, and later reads, only its part:
// a rank's half of a tensor split on its last axis is half of every row,
// and read from the full file it pulls every page of the tensor from a cold
// disk; from its own shard it pulls exactly its bytes. Open recognises the
// stamp and loads such a checkpoint for that rank only.
//
// Reshard needs no MLX: it copies bytes. It holds one tensor's part in
// memory at a time. progress, when set, is called after every tensor with
// the bytes written so far and the total.
func Reshard(ctx context.Context, src, dst string, o PlanOptions, progress func(done, total int64)) (*ShardStamp, error) {
	o.Strategy = Direct
	if st, err := ReadShardStamp(src); err != nil {
		return nil, err
	} else if st != nil {
		return nil, fmt.Errorf("loader: %s is already rank %d of %d's shard", src, st.Rank, st.WorldSize)
	}
	d, err := safetensors.OpenDir(src)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	plan, err := NewPlan(d.Tensors(), o)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	// A stamp left by an earlier run would vouch for files about to change.
	if err := os.Remove(filepath.Join(dst, ShardStampName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("loader: %w", err)
	}

	byFile := map[string][]*TensorPlan{}
	var total int64
	for i := range plan.Sections {
		for j := range plan.Sections[i].Tensors {
			tp := &plan.Sections[i].Tensors[j]
			byFile[tp.File] = append(byFile[tp.File], tp)
			total += tp.ShardBytes
		}
	}
	weightMap := map[string]string{}
	var done int64
	var buf []byte
	for _, f := range d.Files() {
		tps := byFile[f.Path()]
		if len(tps) == 0 {
			continue
		}
		slices.SortFunc(tps, func(a, b *TensorPlan) int { return strings.Compare(a.Name, b.Name) })
		specs := make([]safetensors.TensorSpec, len(tps))
		for i, tp := range tps {
			specs[i] = safetensors.TensorSpec{Name: tp.Name, DType: tp.DType, Shape: tp.ShardShape}
		}
		meta := map[string]string{}
		for k, v := range f.Metadata() {
			meta[k] = v
		}
		meta["mlxdist.shard"] = strconv.Itoa(plan.Rank) + "/" + strconv.Itoa(plan.WorldSize)
		base := filepath.Base(f.Path())
		w, err := safetensors.Create(filepath.Join(dst, base), specs, meta)
		if err != nil {
			return nil, err
		}
		for _, tp := range tps {
			if err := ctx.Err(); err != nil {
				w.Abort()
				return nil, context.Cause(ctx)
			}
			if int64(cap(buf)) < tp.ShardBytes {
				buf = make([]byte, tp.ShardBytes)
			}
			part := buf[:tp.ShardBytes]
			if _, err := fill(f, tp, plan.WorldSize, plan.Rank, ReadPread, part); err != nil {
				w.Abort()
				return nil, &LoadError{Tensor: tp.Name, File: f.Path(), Err: err}
			}
			if _, err := w.Write(part); err != nil {
				w.Abort()
				return nil, err
			}
			weightMap[tp.Name] = base
			done += tp.ShardBytes
			if progress != nil {
				progress(done, total)
			}
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
	if err := writeJSON(filepath.Join(dst, "model.safetensors.index.json"), map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	}); err != nil {
		return nil, err
	}
	if err := copyOtherFiles(src, dst); err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(src)
	stamp := &ShardStamp{Rank: plan.Rank, WorldSize: plan.WorldSize, Rules: plan.Rules, Source: abs,
		Tensors: len(weightMap), Bytes: total}
	if err := writeJSON(filepath.Join(dst, ShardStampName), stamp); err != nil {
		return nil, err
	}
	return stamp, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	return nil
}

// copyOtherFiles copies the regular files of src that are not weights, the
// index or a stamp (config.json, tokenizer files, ...) into dst.
func copyOtherFiles(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasSuffix(name, ".safetensors") || strings.HasPrefix(name, ".") ||
			name == "model.safetensors.index.json" || name == ShardStampName || name == "mkcheckpoint.json" {
			continue
		}
		if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("loader: copy %s: %w", from, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	return nil
}
