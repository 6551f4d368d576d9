package shard

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

	"github.com/mlxdist/mlxdist/internal/atomicfile"
	"github.com/mlxdist/mlxdist/safetensors"
)

// ShardStampName is the file Reshard writes last into a rank's checkpoint;
// loader.Open reads it to load that checkpoint as the rank's shard.
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

// ErrUnstampedShard is returned by loader.Open for a checkpoint whose
// files Reshard wrote but whose stamp is missing: an interrupted or damaged
// reshard.
var ErrUnstampedShard = errors.New("loader: resharded files without their stamp")

// ErrUnsafeOutput is matched by the error Reshard returns before writing
// anything when dst would overwrite what it must not: the source checkpoint
// (dst is src, inside it, or holds it) or a directory of files Reshard did
// not write.
var ErrUnsafeOutput = errors.New("loader: unsafe reshard output directory")

// Reshard writes rank o.Rank's shard of the checkpoint at src, as o's rules
// split it for o.WorldSize ranks, to the directory dst: every tensor cut to
// the rank's part (replicated tensors whole), in files grouped as the
// source's are, with model.safetensors.index.json, the source's other files
// (config.json, the tokenizer) and a ShardStampName stamp, written last.
//
// A node that keeps only its shard stores, and later reads, only its part:
// a rank's half of a tensor split on its last axis is half of every row,
// and read from the full file it pulls every page of the tensor from a cold
// disk; from its own shard it pulls exactly its bytes. loader.Open
// recognises the stamp and loads such a checkpoint for that rank only.
//
// Nothing is written into dst itself until the end: the shard is built in a
// temporary directory beside dst, every file synced, and renamed into place
// only when the stamp is on disk; a failure (a full disk, a source file
// truncated under it, ctx cancelled) removes the temporary directory and
// leaves dst as it was. dst may be missing, empty, or an earlier Reshard
// output, which is replaced whole; anything else, and any dst that resolves
// (through links, "..", or the same device and inode) to src, a directory
// inside it or one holding it, is refused with ErrUnsafeOutput before any
// file is opened. No source file is ever opened for writing.
//
// Reshard needs no MLX: it copies bytes. It holds one tensor's part in
// memory at a time. progress, when set, is called after every tensor with
// the bytes written so far and the total.
func Reshard(ctx context.Context, src, dst string, o PlanOptions, progress func(done, total int64)) (*ShardStamp, error) {
	o.Strategy = Direct
	if err := checkReshardOutput(src, dst); err != nil {
		return nil, err
	}
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
	plan, err := NewPlan(Describe(d.Tensors()), o)
	if err != nil {
		return nil, err
	}
	out, err := atomicfile.CreateDir(dst)
	if err != nil {
		return nil, fmt.Errorf("loader: %w", err)
	}
	stamp, err := writeShard(ctx, d, plan, src, out.Path(), progress)
	if err != nil {
		out.Abort()
		return nil, err
	}
	if err := out.Commit(); err != nil {
		return nil, fmt.Errorf("loader: move the shard into %s: %w", dst, err)
	}
	return stamp, nil
}

// writeShard writes the shard files, index, other files and stamp of plan
// into the empty directory tmp.
func writeShard(ctx context.Context, d *safetensors.Dir, plan *Plan, src, tmp string, progress func(done, total int64)) (*ShardStamp, error) {
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
			specs[i] = safetensors.TensorSpec{Name: tp.Name, Dtype: tp.Dtype, Shape: tp.ShardShape}
		}
		meta := map[string]string{}
		for k, v := range f.Metadata() {
			meta[k] = v
		}
		meta[ShardMetaKey] = strconv.Itoa(plan.Rank) + "/" + strconv.Itoa(plan.WorldSize)
		base := filepath.Base(f.Path())
		w, err := safetensors.Create(filepath.Join(tmp, base), specs, meta)
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
			if _, err := f.ReadPartAt(tp.Part, part, 0, safetensors.ReadPread); err != nil {
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
	if err := writeJSON(filepath.Join(tmp, safetensors.IndexName), map[string]any{
		"metadata":   map[string]any{"total_size": total},
		"weight_map": weightMap,
	}); err != nil {
		return nil, err
	}
	if err := copyOtherFiles(src, tmp); err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(src)
	stamp := &ShardStamp{Rank: plan.Rank, WorldSize: plan.WorldSize, Rules: plan.Rules, Source: abs,
		Tensors: len(weightMap), Bytes: total}
	if err := writeJSON(filepath.Join(tmp, ShardStampName), stamp); err != nil {
		return nil, err
	}
	return stamp, nil
}

// ShardMetaKey is the metadata key every shard file Reshard writes carries
// ("rank/world"), so that shard files without their stamp are recognised.
const ShardMetaKey = "mlxdist.shard"

// checkReshardOutput refuses a dst that overlaps src or holds files Reshard
// did not write, before anything is created.
func checkReshardOutput(src, dst string) error {
	srcReal, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	if srcReal, err = filepath.Abs(srcReal); err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	srcInfo, err := os.Stat(srcReal)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	dstReal, err := resolveMissing(dst)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	overlap := func(why string) error {
		return fmt.Errorf("%w: --out %s %s the source %s; choose a directory outside the source", ErrUnsafeOutput, dst, why, src)
	}
	switch {
	case dstReal == srcReal:
		return overlap("is")
	case within(dstReal, srcReal):
		return overlap("is inside")
	case within(srcReal, dstReal):
		return overlap("holds")
	}
	// Links and "..", resolved above, are not the only ways to name one
	// directory twice: a bind mount is the same device and inode.
	for p := dstReal; ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && os.SameFile(st, srcInfo) {
			return overlap("is the same directory as, or inside,")
		}
		if filepath.Dir(p) == p {
			break
		}
	}
	st, err := os.Stat(dstReal)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%w: --out %s is a file, not a directory", ErrUnsafeOutput, dst)
	}
	entries, err := os.ReadDir(dstReal)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if s, err := ReadShardStamp(dstReal); err != nil || s == nil {
		return fmt.Errorf("%w: --out %s holds %d files that reshard did not write; give a new or empty directory, or one an earlier reshard wrote", ErrUnsafeOutput, dst, len(entries))
	}
	return nil
}

// resolveMissing returns the absolute path of p with every link resolved,
// for a p whose last elements may not exist yet.
func resolveMissing(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for cur := abs; ; cur = filepath.Dir(cur) {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if filepath.Dir(cur) == cur {
			return abs, nil
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}

// within reports whether p lies strictly inside dir (both absolute and
// clean).
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func writeJSON(path string, v any) error {
	if err := atomicfile.WriteJSON(path, v); err != nil {
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
	out, err := atomicfile.Create(to, 0o666)
	if err != nil {
		return fmt.Errorf("loader: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Abort()
		return fmt.Errorf("loader: copy %s: %w", from, err)
	}
	if err := out.Commit(); err != nil {
		return fmt.Errorf("loader: copy %s: %w", from, err)
	}
	return nil
}
