package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mlxdist/mlxdist/internal/oneline"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
)

// Dir is a checkpoint: the shard files of one model, opened together, with
// one name space of tensors across them.
type Dir struct {
	path      string
	files     []*File // sorted by path
	byName    map[string]*File
	names     []string // sorted
	indexMeta map[string]any
}

// OpenDir opens the checkpoint at path, which is one of:
//
//   - a directory with model.safetensors.index.json: its weight_map names
//     every tensor's shard file. Every file it names must exist, and the
//     index and the files' headers must agree tensor by tensor: no tensor
//     missing from its file, none in a file the index maps elsewhere or
//     does not map at all. Files in the directory the index does not name
//     are ignored, as the reference loaders ignore them.
//   - a directory without an index: every *.safetensors file in it, which
//     must hold disjoint tensors (a single file is the common case; several
//     are accepted because a tensor name still identifies one file).
//   - the path of a single .safetensors file.
//
// Only headers are read, in parallel; no tensor data page is touched.
func OpenDir(path string) (*Dir, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		if err := checkRegular(path, st); err != nil {
			return nil, err
		}
	}
	d := &Dir{path: path}
	var weightMap map[string]string
	var paths []string
	switch idxPath := filepath.Join(path, IndexName); {
	case !st.IsDir():
		paths = []string{path}
	case fileExists(idxPath):
		weightMap, d.indexMeta, err = readIndex(idxPath)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, f := range weightMap {
			if !seen[f] {
				seen[f] = true
				paths = append(paths, filepath.Join(path, f))
			}
		}
		slices.Sort(paths)
		var missing []string
		for _, p := range paths {
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				missing = append(missing, filepath.Base(p))
			}
		}
		if len(missing) > 0 {
			return nil, &IndexError{Files: missing, Detail: fmt.Sprintf("%s: the index lists %s, missing from the directory: the checkpoint is incomplete (an interrupted copy or conversion?); copy or write it again",
				path, oneline.List(missing, 3))}
		}
	default:
		paths, err = filepath.Glob(filepath.Join(path, "*.safetensors"))
		if err != nil {
			return nil, err
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("safetensors: %s has neither %s nor *.safetensors files", path, IndexName)
		}
	}
	if d.files, err = openAll(paths); err != nil {
		return nil, err
	}
	if err := d.link(weightMap); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func readIndex(p string) (map[string]string, map[string]any, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, err
	}
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, nil, &IndexError{Detail: fmt.Sprintf("%s is not a valid index: %v", p, err)}
	}
	if len(idx.WeightMap) == 0 {
		return nil, nil, &IndexError{Detail: fmt.Sprintf("%s has no weight_map", p)}
	}
	for name, f := range idx.WeightMap {
		if !filepath.IsLocal(f) {
			return nil, nil, &IndexError{Tensor: name, Files: []string{f}, Detail: fmt.Sprintf("is mapped to %q, not a file name inside the checkpoint", f)}
		}
	}
	return idx.WeightMap, idx.Metadata, nil
}

// openAll opens the files in parallel: header parsing is CPU-bound and a
// checkpoint has hundreds of files.
func openAll(paths []string) ([]*File, error) {
	files := make([]*File, len(paths))
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(paths)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				files[i], errs[i] = Open(paths[i])
			}
		}()
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
		return nil, err
	}
	return files, nil
}

// link builds the name space and checks it against the index.
func (d *Dir) link(weightMap map[string]string) error {
	n := 0
	for _, f := range d.files {
		n += len(f.h.tensors)
	}
	d.byName = make(map[string]*File, n)
	d.names = make([]string, 0, n)
	for _, f := range d.files {
		base := filepath.Base(f.path)
		for _, t := range f.h.tensors {
			if other, dup := d.byName[t.Name]; dup {
				return &IndexError{Tensor: t.Name, Files: []string{other.path, f.path},
					Detail: fmt.Sprintf("is in two files: %s and %s", other.path, f.path)}
			}
			if weightMap != nil {
				want, ok := weightMap[t.Name]
				if !ok {
					return &IndexError{Tensor: t.Name, Files: []string{f.path},
						Detail: fmt.Sprintf("is in %s but not in the index", f.path)}
				}
				if filepath.Clean(want) != base && filepath.Join(d.path, want) != f.path {
					return &IndexError{Tensor: t.Name, Files: []string{f.path, want},
						Detail: fmt.Sprintf("is in %s but the index maps it to %s", f.path, want)}
				}
			}
			d.byName[t.Name] = f
			d.names = append(d.names, t.Name)
		}
	}
	if weightMap != nil && len(weightMap) != len(d.names) {
		for name, file := range weightMap {
			if _, ok := d.byName[name]; !ok {
				return &IndexError{Tensor: name, Files: []string{file},
					Detail: fmt.Sprintf("is in the index but not in %s", filepath.Join(d.path, file))}
			}
		}
	}
	slices.Sort(d.names)
	return nil
}

// Path returns the path the checkpoint was opened with.
func (d *Dir) Path() string { return d.path }

// Files returns the shard files, sorted by path. The slice is shared.
func (d *Dir) Files() []*File { return d.files }

// Names returns every tensor name, sorted. The slice is shared.
func (d *Dir) Names() []string { return d.names }

// Len returns the number of tensors.
func (d *Dir) Len() int { return len(d.names) }

// Tensor looks the tensor called name up across all shard files and returns
// it with the file that holds it.
func (d *Dir) Tensor(name string) (TensorInfo, *File, bool) {
	f, ok := d.byName[name]
	if !ok {
		return TensorInfo{}, nil, false
	}
	t, _ := f.Tensor(name)
	return t, f, true
}

// Tensors returns every tensor, sorted by name; TensorInfo.File says which
// file holds each.
func (d *Dir) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(d.names))
	for i, name := range d.names {
		out[i], _ = d.byName[name].Tensor(name)
	}
	return out
}

// TotalBytes returns the size of all tensors in all files.
func (d *Dir) TotalBytes() int64 {
	var n int64
	for _, f := range d.files {
		n += f.TotalBytes()
	}
	return n
}

// IndexTotalSize returns the index's metadata.total_size and whether it has
// one. It is not checked against TotalBytes: writers compute it differently
// (some count tied or shared weights once, some not), so it is informative.
func (d *Dir) IndexTotalSize() (int64, bool) {
	v, ok := d.indexMeta["total_size"].(float64)
	return int64(v), ok
}

// BytesRead returns the tensor bytes read from all files so far.
func (d *Dir) BytesRead() int64 {
	var n int64
	for _, f := range d.files {
		n += f.BytesRead()
	}
	return n
}

// Close closes every file; slices from their Data are invalid afterwards.
func (d *Dir) Close() error {
	var errs []error
	for _, f := range d.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}
