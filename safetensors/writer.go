package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/mlxdist/mlxdist/internal/atomicfile"
)

// TensorSpec names a tensor to be written: everything but its bytes.
type TensorSpec struct {
	Name  string
	Dtype Dtype
	Shape []int64
}

// TensorData is a tensor to be written with its bytes (little-endian,
// row-major).
type TensorData struct {
	Name  string
	Dtype Dtype
	Shape []int64
	Data  []byte
}

// Writer streams a safetensors file to disk. The header is fixed up front
// by Create, so the data can then be written in pieces of any size, in the
// order of the specs, without ever holding a whole tensor in memory.
//
// The file is written under a temporary name in the same directory and
// renamed over path by Close, so a file that another process (or this one)
// has mapped is replaced, never truncated under it, and a failed or
// interrupted write leaves path as it was. The file gets mode 0666 less the
// umask, as os.Create gives.
type Writer struct {
	path    string
	tmp     *atomicfile.File
	specs   []TensorSpec
	offsets []int64 // begin of each spec, plus the total at the end
	written int64
	index   map[string]int
	err     error
	done    bool
}

// Create starts writing a safetensors file at path holding the given
// tensors, in that order, and metadata (nil for none).
func Create(path string, specs []TensorSpec, metadata map[string]string) (*Writer, error) {
	hdr, offsets, err := encodeHeader(specs, metadata)
	if err != nil {
		return nil, err
	}
	tmp, err := atomicfile.Create(path, 0o666)
	if err != nil {
		return nil, fmt.Errorf("safetensors: create %s: %w", path, err)
	}
	w := &Writer{path: path, tmp: tmp, specs: specs, offsets: offsets, index: make(map[string]int, len(specs))}
	for i, s := range specs {
		w.index[s.Name] = i
	}
	if _, err := tmp.Write(hdr); err != nil {
		w.Abort()
		return nil, fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return w, nil
}

// encodeHeader lays the tensors out back to back in the given order and
// returns the length-prefixed header, padded with spaces so that the data
// starts at a multiple of 8 bytes, as the reference writer does.
func encodeHeader(specs []TensorSpec, metadata map[string]string) ([]byte, []int64, error) {
	var b bytes.Buffer
	b.WriteString("{")
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	str := func(s string) {
		enc.Encode(s) // strings always encode
		b.Truncate(b.Len() - 1)
	}
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		str(metadataKey)
		b.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			str(k)
			b.WriteByte(':')
			str(metadata[k])
		}
		b.WriteString("}")
	}
	offsets := make([]int64, len(specs)+1)
	seen := make(map[string]bool, len(specs))
	var at int64
	for i, s := range specs {
		if s.Name == metadataKey || seen[s.Name] {
			return nil, nil, fmt.Errorf("safetensors: cannot write tensor name %q twice or as a reserved key", s.Name)
		}
		seen[s.Name] = true
		if !s.Dtype.valid() {
			return nil, nil, fmt.Errorf("safetensors: tensor %q has invalid dtype %d", s.Name, uint8(s.Dtype))
		}
		for _, d := range s.Shape {
			if d < 0 {
				return nil, nil, fmt.Errorf("safetensors: tensor %q has negative dimension in shape %v", s.Name, s.Shape)
			}
		}
		n, reason, ok := byteSize(s.Dtype, s.Shape)
		if !ok {
			return nil, nil, fmt.Errorf("safetensors: tensor %q of shape %v and dtype %s cannot be stored (%s)", s.Name, s.Shape, s.Dtype, reason)
		}
		offsets[i] = at
		if len(metadata) > 0 || i > 0 {
			b.WriteByte(',')
		}
		str(s.Name)
		fmt.Fprintf(&b, `:{"dtype":"%s","shape":[`, s.Dtype)
		for j, d := range s.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", d)
		}
		fmt.Fprintf(&b, `],"data_offsets":[%d,%d]}`, at, at+n)
		at += n
	}
	offsets[len(specs)] = at
	b.WriteString("}")
	for (8+b.Len())%8 != 0 {
		b.WriteByte(' ')
	}
	if b.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header of %d bytes exceeds the limit of %d", b.Len(), MaxHeaderSize)
	}
	out := make([]byte, 8, 8+b.Len())
	binary.LittleEndian.PutUint64(out, uint64(b.Len()))
	return append(out, b.Bytes()...), offsets, nil
}

// Write appends raw data bytes: the tensors' bytes back to back, in the
// order of the specs. Writing past the last tensor is an error.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("safetensors: write after close")
	}
	total := w.offsets[len(w.specs)]
	if int64(len(p)) > total-w.written {
		w.err = fmt.Errorf("safetensors: %s: %d bytes written past the data end %d", w.path, w.written+int64(len(p))-total, total)
		return 0, w.err
	}
	n, err := w.tmp.Write(p)
	w.written += int64(n)
	if err != nil {
		w.err = fmt.Errorf("safetensors: write %s: %w", w.path, err)
	}
	return n, w.err
}

// WriteTensor writes the whole of the tensor called name, which must be the
// next one in the order of the specs, and data its exact size.
func (w *Writer) WriteTensor(name string, data []byte) error {
	i, ok := w.index[name]
	if !ok {
		return fmt.Errorf("safetensors: %s: no tensor %q in the header", w.path, name)
	}
	if w.written != w.offsets[i] {
		return fmt.Errorf("safetensors: %s: tensor %q starts at data offset %d but %d bytes are written", w.path, name, w.offsets[i], w.written)
	}
	if want := w.offsets[i+1] - w.offsets[i]; int64(len(data)) != want {
		return fmt.Errorf("safetensors: %s: tensor %q needs %d bytes, got %d", w.path, name, want, len(data))
	}
	_, err := w.Write(data)
	return err
}

// Close checks that every byte was written, syncs the file and renames it
// to its final path. After a failed Close nothing is left at the temporary
// name and path is untouched.
func (w *Writer) Close() error {
	if w.done {
		return w.err
	}
	w.done = true
	if w.err == nil && w.written != w.offsets[len(w.specs)] {
		w.err = fmt.Errorf("safetensors: %s: %d of %d data bytes written", w.path, w.written, w.offsets[len(w.specs)])
	}
	if w.err != nil {
		w.tmp.Abort()
		return w.err
	}
	if err := w.tmp.Commit(); err != nil {
		w.err = fmt.Errorf("safetensors: write %s: %w", w.path, err)
	}
	return w.err
}

// Abort discards the file being written.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.err = errors.New("safetensors: writer aborted")
	w.tmp.Abort()
}

// WriteFile writes the tensors, in order, and metadata to a safetensors file
// at path, replacing it atomically.
func WriteFile(path string, tensors []TensorData, metadata map[string]string) error {
	specs := make([]TensorSpec, len(tensors))
	for i, t := range tensors {
		specs[i] = TensorSpec{t.Name, t.Dtype, t.Shape}
	}
	w, err := Create(path, specs, metadata)
	if err != nil {
		return err
	}
	for _, t := range tensors {
		if err := w.WriteTensor(t.Name, t.Data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// IndexName is the name of a sharded checkpoint's index file.
const IndexName = "model.safetensors.index.json"

// ShardFileName returns the conventional name of shard file i (from 1) of n:
// "model-00001-of-00003.safetensors".
func ShardFileName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// WriteDir writes a sharded checkpoint into dir: shard file i holds
// shards[i], each with metadata, and model.safetensors.index.json maps every
// tensor to its file, with metadata.total_size the sum of the tensor sizes.
func WriteDir(dir string, shards [][]TensorData, metadata map[string]string) error {
	weightMap := map[string]string{}
	var total int64
	for i, shard := range shards {
		name := ShardFileName(i+1, len(shards))
		for _, t := range shard {
			weightMap[t.Name] = name
			total += int64(len(t.Data))
		}
		if err := WriteFile(filepath.Join(dir, name), shard, metadata); err != nil {
			return err
		}
	}
	idx := struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]any{"total_size": total}, weightMap}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, IndexName), append(b, '\n'))
}

func writeFileAtomic(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b, 0o666); err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	return nil
}
