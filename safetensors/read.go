package safetensors

import "fmt"

// How ReadPart hints the kernel: a run of at least adviseMinRun bytes gets
// its own MADV_WILLNEED; for many small runs one call over their span is
// cheaper than a syscall each, but only worth it when the part fills most
// of that span (otherwise it would read the other parts too).
const (
	adviseMinRun   = 1 << 20
	adviseMaxCalls = 64
)

// ReadPart copies part k of the tensor called name, split into n equal
// parts along axis (see PartRanges), into dst, whose length must be the
// part's size exactly. It returns the number of bytes copied.
//
// ReadPart is the default way to read a rank's shard: it copies from the
// mapping, which is fastest when the file's pages are in the page cache, and
// it asks the kernel to read ahead (MADV_WILLNEED) before copying. On a cold
// file on macOS, where faulting mapped pages in is much slower than read(2),
// ReadPartAt may be faster. A File that is not mapped reads with ReadAt.
func (f *File) ReadPart(name string, axis, n, k int, dst []byte) (int, error) {
	s, err := f.partSlab(name, axis, n, k, dst)
	if err != nil {
		return 0, err
	}
	return f.copySlab(s, dst)
}

// ReadPartAt is ReadPart reading with pread(2) (the file's ReadAt) instead
// of the mapping: each byte is read once into dst, with no page faults and no
// mapped pages left resident.
func (f *File) ReadPartAt(name string, axis, n, k int, dst []byte) (int, error) {
	s, err := f.partSlab(name, axis, n, k, dst)
	if err != nil {
		return 0, err
	}
	return f.readSlabAt(s, dst)
}

// ReadAxis copies indices [start, end) of axis of the tensor called name
// (see AxisRanges) into dst, whose length must be the slice's size, from the
// mapping. ReadAxisAt does the same with ReadAt.
func (f *File) ReadAxis(name string, axis int, start, end int64, dst []byte) (int, error) {
	s, err := f.axisSlab(name, axis, start, end, dst)
	if err != nil {
		return 0, err
	}
	return f.copySlab(s, dst)
}

// ReadAxisAt is ReadAxis reading with ReadAt instead of the mapping.
func (f *File) ReadAxisAt(name string, axis int, start, end int64, dst []byte) (int, error) {
	s, err := f.axisSlab(name, axis, start, end, dst)
	if err != nil {
		return 0, err
	}
	return f.readSlabAt(s, dst)
}

// Release tells the kernel that the pages under the ranges will not be read
// again (MADV_DONTNEED), so that they leave the process's resident set once
// copied. The data stays valid: a later read faults it back in. Release does
// nothing for a file that is not mapped.
func (f *File) Release(rs []Range) {
	if f.data == nil {
		return
	}
	for _, r := range rs {
		adviseDontNeed(f.data, r.Offset, r.Length)
	}
}

// ReleaseTensor is Release for all of the tensor called name.
func (f *File) ReleaseTensor(name string) error {
	t, err := f.lookup(name)
	if err != nil {
		return err
	}
	f.Release([]Range{{t.Offset, t.Size()}})
	return nil
}

func (f *File) partSlab(name string, axis, n, k int, dst []byte) (slab, error) {
	t, err := f.lookup(name)
	if err != nil {
		return slab{}, err
	}
	start, end, err := t.partBounds(axis, n, k)
	if err != nil {
		return slab{}, err
	}
	return f.checkedSlab(t, axis, start, end, dst)
}

func (f *File) axisSlab(name string, axis int, start, end int64, dst []byte) (slab, error) {
	t, err := f.lookup(name)
	if err != nil {
		return slab{}, err
	}
	return f.checkedSlab(t, axis, start, end, dst)
}

func (f *File) checkedSlab(t *TensorInfo, axis int, start, end int64, dst []byte) (slab, error) {
	s, err := t.axisSlab(axis, start, end)
	if err != nil {
		return slab{}, err
	}
	if int64(len(dst)) != s.bytes() {
		return slab{}, fmt.Errorf("safetensors: tensor %q slice [%d, %d) of axis %d has %d bytes, but the buffer has %d",
			t.Name, start, end, axis, s.bytes(), len(dst))
	}
	if f.r == nil && f.data == nil {
		return slab{}, errClosed
	}
	return s, nil
}

func (f *File) copySlab(s slab, dst []byte) (int, error) {
	if f.data == nil {
		return f.readSlabAt(s, dst)
	}
	f.advise(s)
	pos := 0
	err := f.Protect(func() error {
		s.each(func(off, n int64) bool {
			pos += copy(dst[pos:], f.data[off:off+n])
			return true
		})
		return nil
	})
	f.bytesRead.Add(int64(pos))
	return pos, err
}

func (f *File) advise(s slab) {
	switch {
	case s.Count == 0:
	case s.Count == 1 || (s.Count <= adviseMaxCalls && s.Length >= adviseMinRun):
		if s.Count == 1 {
			adviseSequential(f.data, s.Offset, s.Length)
		}
		s.each(func(off, n int64) bool {
			adviseWillNeed(f.data, off, n)
			return true
		})
	case s.Length*2 >= s.Stride:
		adviseWillNeed(f.data, s.Offset, (s.Count-1)*s.Stride+s.Length)
	}
}

func (f *File) readSlabAt(s slab, dst []byte) (int, error) {
	pos := 0
	var err error
	s.each(func(off, n int64) bool {
		if err = f.readAt(dst[pos:pos+int(n)], off); err != nil {
			return false
		}
		pos += int(n)
		return true
	})
	return pos, err
}

// ReadRanges copies the bytes of the ranges, in order, into dst, whose
// length must be their total; from the mapping when there is one.
func (f *File) ReadRanges(rs []Range, dst []byte) (int, error) {
	if err := f.checkRanges(rs, dst); err != nil {
		return 0, err
	}
	if f.data == nil {
		return f.ReadRangesAt(rs, dst)
	}
	pos := 0
	err := f.Protect(func() error {
		for _, r := range rs {
			pos += copy(dst[pos:], f.data[r.Offset:r.End()])
		}
		return nil
	})
	f.bytesRead.Add(int64(pos))
	return pos, err
}

// ReadRangesAt is ReadRanges reading with ReadAt.
func (f *File) ReadRangesAt(rs []Range, dst []byte) (int, error) {
	if err := f.checkRanges(rs, dst); err != nil {
		return 0, err
	}
	pos := 0
	for _, r := range rs {
		if err := f.readAt(dst[pos:pos+int(r.Length)], r.Offset); err != nil {
			return pos, err
		}
		pos += int(r.Length)
	}
	return pos, nil
}

func (f *File) checkRanges(rs []Range, dst []byte) error {
	if f.r == nil && f.data == nil {
		return errClosed
	}
	var total int64
	end := f.h.dataOff + f.h.dataLen
	for _, r := range rs {
		if r.Offset < f.h.dataOff || r.Length < 0 || r.Offset > end || r.Length > end-r.Offset {
			return fmt.Errorf("safetensors: %srange [%d, %d) is outside the data [%d, %d)", f.pathPrefix(), r.Offset, r.Offset+r.Length, f.h.dataOff, end)
		}
		total += r.Length
	}
	if total != int64(len(dst)) {
		return fmt.Errorf("safetensors: ranges hold %d bytes, but the buffer has %d", total, len(dst))
	}
	return nil
}
