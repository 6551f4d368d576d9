package safetensors

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// File is one open safetensors file: its parsed header and, on darwin and
// linux, a read-only memory mapping of the whole file. Its methods are safe
// for concurrent use, except Close.
type File struct {
	path   string
	h      *header
	r      io.ReaderAt // pread path: the *os.File, or the NewReader argument
	osFile *os.File    // nil for NewReader
	data   []byte      // the mapping; nil when the file is not mapped
	sorted []int32     // indices into h.tensors, by name

	bytesRead atomic.Int64
	closeOnce sync.Once
	closeErr  error
}

// Open opens the safetensors file at path, reads and validates its header
// and maps the file read-only. No tensor data is read: pages come in only
// when Data, ReadPart or ReadRanges touch them.
//
// A path that is not a regular file (a FIFO, a device, a socket) is refused
// with ErrNotRegular before it is opened, since reading one could block
// forever.
func Open(path string) (*File, error) {
	pre, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(path, pre); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !os.SameFile(pre, st) {
		f.Close()
		return nil, fmt.Errorf("safetensors: %s was replaced while being opened; try again", path)
	}
	h, err := readHeader(f, st.Size())
	if err != nil {
		f.Close()
		var fe *FormatError
		if errors.As(err, &fe) {
			fe.Path = path
		}
		return nil, err
	}
	sf := newFile(path, h, f)
	sf.osFile = f
	if haveMmap {
		data, err := mmapFile(f, st.Size())
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("safetensors: map %s: %w", path, err)
		}
		sf.data = data
	}
	return sf, nil
}

// checkRegular refuses anything but a regular file, naming what it is.
func checkRegular(path string, st os.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	kind := "special file"
	switch m := st.Mode(); {
	case m.IsDir():
		kind = "directory"
	case m&os.ModeNamedPipe != 0:
		kind = "named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		kind = "socket"
	case m&os.ModeDevice != 0:
		kind = "device"
	}
	return fmt.Errorf("%w: %s is a %s; give a .safetensors file or a checkpoint directory", ErrNotRegular, path, kind)
}

// NewReader reads a safetensors file of the given size from r, as
// archive/zip.NewReader does. The header is read and validated at once;
// tensor data is read from r on demand. Close does not close r.
func NewReader(r io.ReaderAt, size int64) (*File, error) {
	h, err := readHeader(r, size)
	if err != nil {
		return nil, err
	}
	return newFile("", h, r), nil
}

func newFile(path string, h *header, r io.ReaderAt) *File {
	f := &File{path: path, h: h, r: r}
	if path != "" {
		for i := range h.tensors {
			h.tensors[i].File = path
		}
	}
	f.sorted = make([]int32, len(h.tensors))
	for i := range f.sorted {
		f.sorted[i] = int32(i)
	}
	slices.SortFunc(f.sorted, func(a, b int32) int { return strings.Compare(h.tensors[a].Name, h.tensors[b].Name) })
	return f
}

// Path returns the name the file was opened with ("" for NewReader).
func (f *File) Path() string { return f.path }

// Mapped reports whether the file is memory-mapped. When it is not (a File
// from NewReader, or an OS without mmap support here), Data allocates and
// reads.
func (f *File) Mapped() bool { return f.data != nil }

// Tensors returns the tensors in header order. The slice is shared: do not
// modify it.
func (f *File) Tensors() []TensorInfo { return f.h.tensors }

// SortedTensors returns the tensors sorted by name, in a new slice.
func (f *File) SortedTensors() []TensorInfo {
	out := make([]TensorInfo, len(f.sorted))
	for i, j := range f.sorted {
		out[i] = f.h.tensors[j]
	}
	return out
}

// Names returns the tensor names sorted.
func (f *File) Names() []string {
	out := make([]string, len(f.sorted))
	for i, j := range f.sorted {
		out[i] = f.h.tensors[j].Name
	}
	return out
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.h.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.h.tensors[i], true
}

// Metadata returns the header's __metadata__ (nil when there is none). The
// map is shared: do not modify it.
func (f *File) Metadata() map[string]string { return f.h.metadata }

// DataOffset returns the file offset where the data section begins (8 plus
// the header length).
func (f *File) DataOffset() int64 { return f.h.dataOff }

// TotalBytes returns the size of the data section: the sum of the tensors'
// sizes.
func (f *File) TotalBytes() int64 { return f.h.dataLen }

// BytesRead returns how many tensor bytes Data, ReadPart, ReadPartAt,
// ReadRanges and ReadRangesPread have delivered so far: each byte a read
// copied from the mapping or read with pread counts once.
func (f *File) BytesRead() int64 { return f.bytesRead.Load() }

func (f *File) lookup(name string) (*TensorInfo, error) {
	i, ok := f.h.byName[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %sno tensor %q", f.pathPrefix(), name)
	}
	return &f.h.tensors[i], nil
}

func (f *File) pathPrefix() string {
	if f.path == "" {
		return ""
	}
	return f.path + ": "
}

var errClosed = errors.New("safetensors: file already closed")

// Data returns the bytes of the tensor called name. For a mapped file the
// slice is the mapping itself: no copy is made, it is read-only (writing to
// it faults), and it is valid only until Close; copy what must outlive the
// File. For an unmapped file Data reads into a new slice.
//
// Read a mapped slice only inside Protect: should another process truncate
// the file meanwhile, touching the vanished pages raises SIGBUS, which
// outside Protect ends the whole process. ReadPart and the other Read
// methods copy under that protection themselves.
func (f *File) Data(name string) ([]byte, error) {
	t, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if f.data != nil {
		f.bytesRead.Add(t.Size())
		return f.data[t.Offset : t.Offset+t.Size() : t.Offset+t.Size()], nil
	}
	if f.r == nil {
		return nil, errClosed
	}
	buf := make([]byte, t.Size())
	if err := f.readAt(buf, t.Offset); err != nil {
		return nil, err
	}
	return buf, nil
}

// WillNeed asks the OS to start reading the named tensors' bytes into its
// page cache, for a reader that will want them soon (MLX's own loader, say),
// and returns without waiting for them. It copies nothing and counts nothing
// in BytesRead. It is advice: an unmapped or closed file, or an OS without
// it, ignores it; only a name the file lacks is an error.
func (f *File) WillNeed(names ...string) error {
	for _, name := range names {
		t, err := f.lookup(name)
		if err != nil {
			return err
		}
		if f.data == nil {
			continue
		}
		// Linux reads ahead at most the device's read-ahead window per
		// call (measured: 8 MiB of a 16 MiB tensor), so the advice goes
		// in pieces no larger than the smallest such window.
		for off, end := t.Offset, t.Offset+t.Size(); off < end; off += willNeedPiece {
			adviseWillNeed(f.data, off, min(willNeedPiece, end-off))
		}
	}
	return nil
}

// willNeedPiece is the span of one read-ahead advice: Linux's default
// read-ahead window (128 KiB; a device's own is usually larger).
const willNeedPiece = 128 << 10

func (f *File) readAt(p []byte, off int64) error {
	n, err := f.r.ReadAt(p, off)
	f.bytesRead.Add(int64(n))
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("safetensors: %sread %d bytes at %d: %w", f.pathPrefix(), len(p), off, err)
}

// Close unmaps and closes the file. Slices returned by Data are invalid
// afterwards. Close is idempotent: later calls return the first result.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		if f.data != nil {
			f.closeErr = munmap(f.data)
			f.data = nil
		}
		if f.osFile != nil {
			if err := f.osFile.Close(); f.closeErr == nil {
				f.closeErr = err
			}
		}
		f.r = nil
	})
	return f.closeErr
}
