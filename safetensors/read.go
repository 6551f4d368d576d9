package safetensors

import (
	"fmt"
	"sync"
)

// ReadMode is how ReadPartAt takes a part's bytes from the file. A File
// that is not mapped reads with pread in every mode, each run on its own
// except in ReadPread mode.
type ReadMode int

const (
	// ReadAuto reads runs of 256 KiB and more with pread(2) and copies
	// shorter runs (the rows of a part split on its last axis) out of the
	// mapping, so that no byte is read that the part does not hold.
	ReadAuto ReadMode = iota
	// ReadPread reads with pread(2) alone: no page faults, no mapped pages.
	// Short runs are read in windows of up to 4 MiB of the file when they
	// fill at least half of it, so more bytes may be read than copied.
	ReadPread
	// ReadMmap copies everything from the mapping.
	ReadMmap
)

// How ReadPartAt reads: in pread mode a run this long is read on its own,
// shorter runs are gathered into windows of up to preadWindow bytes of the
// file; ReadAuto takes runs of preadDirect bytes and more with pread.
const (
	preadDirect = 256 << 10
	preadWindow = 4 << 20
)

// How a copy from the mapping hints the kernel: a run of at least
// adviseMinRun bytes gets its own MADV_WILLNEED; for many small runs one
// call over their span is cheaper than a syscall each, but only worth it
// when the part fills most of that span (otherwise it would read the other
// parts too).
const (
	adviseMinRun   = 1 << 20
	adviseMaxCalls = 64
)

// ReadPart copies part k of the tensor called name, split into n equal
// parts along axis (see PartRanges), into dst, whose length must be the
// part's size exactly. It returns the number of bytes copied.
//
// ReadPart copies from the mapping (ReadMmap), which is fastest when the
// file's pages are in the page cache, asking the kernel to read ahead
// (MADV_WILLNEED) before copying and dropping the copied pages from the
// process's mapping after (see ReadPartAt). On a cold file on macOS, where faulting
// mapped pages in is much slower than read(2), ReadPartAt with ReadAuto or
// ReadPread may be faster. A File that is not mapped reads with ReadAt.
func (f *File) ReadPart(name string, axis, n, k int, dst []byte) (int, error) {
	t, err := f.lookup(name)
	if err != nil {
		return 0, err
	}
	p, err := t.splitPart(axis, n, k)
	if err != nil {
		return 0, err
	}
	if int64(len(dst)) != p.Size() {
		start, end, _ := t.partBounds(axis, n, k)
		return 0, fmt.Errorf("safetensors: tensor %q slice [%d, %d) of axis %d has %d bytes, but the buffer has %d",
			t.Name, start, end, axis, p.Size(), len(dst))
	}
	read, err := f.ReadPartAt(p, dst, 0, ReadMmap)
	return int(read), err
}

// ReadPartAt copies bytes [off, off+len(dst)) of p, a Part of a tensor of
// f, into dst, as mode says, and returns the bytes it read from the file:
// len(dst), or more in ReadPread mode when it reads a window. BytesRead
// grows by as much. A part is copied from the mapping under Protect, so a
// file truncated meanwhile is a *ChangedError, and the copied pages are
// then dropped from the process's mapping (see Release): what stays
// resident is the copy, not the copy and the file. Several goroutines may
// read pieces of one part at once.
func (f *File) ReadPartAt(p Part, dst []byte, off int64, mode ReadMode) (int64, error) {
	if f.r == nil && f.data == nil {
		return 0, errClosed
	}
	p0, p1 := off, off+int64(len(dst))
	if p0 < 0 || p1 > p.Size() {
		return 0, fmt.Errorf("safetensors: %sbytes [%d, %d) are not inside a part of %d bytes", f.pathPrefix(), p0, p1, p.Size())
	}
	if p1 == p0 {
		return 0, nil
	}
	if sp := p.span(0, p.Size()); sp.Offset < f.h.dataOff || sp.End() > f.h.dataOff+f.h.dataLen {
		return 0, fmt.Errorf("safetensors: %sthe part's bytes [%d, %d) are outside the data [%d, %d)",
			f.pathPrefix(), sp.Offset, sp.End(), f.h.dataOff, f.h.dataOff+f.h.dataLen)
	}
	if f.data == nil || mode == ReadPread {
		return f.preadPart(p, p0, p1, dst, mode == ReadPread)
	}
	return f.copyPart(p, p0, p1, dst, mode)
}

// copyPart copies from the mapping, except, in ReadAuto mode, the long
// runs, which it preads.
func (f *File) copyPart(p Part, p0, p1 int64, dst []byte, mode ReadMode) (int64, error) {
	f.advisePart(p, p0, p1, mode)
	var read, mapped int64
	lo, hi := int64(-1), int64(0)
	var rerr error
	err := f.Protect(func() error {
		if p.strided() && p.rowPart < gatherMaxRun {
			lo, hi = f.copyStrided(p, p0, p1, dst)
			read, mapped = p1-p0, p1-p0
			return nil
		}
		p.visit(p0, p1, func(off, length, pos int64) bool {
			d := dst[pos-p0 : pos-p0+length]
			if mode == ReadAuto && length >= preadDirect {
				if rerr = f.readAt(d, off); rerr != nil { // counts its bytes
					return false
				}
				read += length
				return true
			}
			n := int64(copy(d, f.data[off:off+length]))
			read += n
			mapped += n
			if lo < 0 {
				lo = off
			}
			hi = off + length
			return true
		})
		return nil
	})
	f.bytesRead.Add(mapped)
	if err == nil {
		err = rerr
	}
	if lo >= 0 && err == nil {
		f.Release([]Range{{lo, hi - lo}})
	}
	return read, err
}

// copyStrided copies bytes [p0, p1) of p, a strided part whose runs are
// shorter than gatherMaxRun, from the mapping into dst: the whole runs with
// copyRows, a piece of a run at either end with copy(). It returns the file
// span it read from.
func (f *File) copyStrided(p Part, p0, p1 int64, dst []byte) (lo, hi int64) {
	run, at := p.rowPart, p.at
	lo, hi = at(p0), at(p1-1)+1
	pos := p0
	if in := pos % run; in != 0 { // the end of a run
		n := min(run-in, p1-pos)
		copy(dst[:n], f.data[at(pos):at(pos)+n])
		pos += n
	}
	if rows := (p1 - pos) / run; rows > 0 {
		off := at(pos)
		copyRows(dst[pos-p0:pos-p0+rows*run], f.data[off:off+(rows-1)*p.row+run], int(rows), int(run), int(p.row))
		pos += rows * run
	}
	if pos < p1 { // the start of a run
		copy(dst[pos-p0:], f.data[at(pos):at(pos)+p1-pos])
	}
	return lo, hi
}

// advisePart asks the kernel to read ahead what a copy of bytes [p0, p1)
// of p from the mapping will touch.
func (f *File) advisePart(p Part, p0, p1 int64, mode ReadMode) {
	first := int64(-1)
	p.visit(p0, p1, func(_, length, _ int64) bool { first = length; return false })
	if mode == ReadAuto && first >= preadDirect {
		return // long runs are preads, which need no advice
	}
	sp := p.span(p0, p1)
	switch {
	case first == p1-p0: // one run
		adviseSequential(f.data, sp.Offset, sp.Length)
		adviseWillNeed(f.data, sp.Offset, sp.Length)
	case (p1-p0)*2 >= sp.Length:
		// Dense: one call over the span reads little that is not copied.
		adviseWillNeed(f.data, sp.Offset, sp.Length)
	default:
		calls := 0
		p.visit(p0, p1, func(off, length, _ int64) bool {
			if length >= adviseMinRun && (mode == ReadMmap || length < preadDirect) {
				adviseWillNeed(f.data, off, length)
				calls++
			}
			return calls < adviseMaxCalls
		})
	}
}

var windowPool = sync.Pool{New: func() any { b := make([]byte, preadWindow); return &b }}

// span is one run of a part: length bytes at file offset off, which land at
// pos in dst.
type span struct{ off, length, pos int64 }

// preadPart reads bytes [p0, p1) of p with pread: long runs on their own,
// short ones, when windows is set, gathered into windows they fill at least
// half of.
func (f *File) preadPart(p Part, p0, p1 int64, dst []byte, windows bool) (int64, error) {
	var read int64
	var win []span
	flush := func() error {
		if len(win) == 0 {
			return nil
		}
		defer func() { win = win[:0] }()
		first, last := win[0], win[len(win)-1]
		length := last.off + last.length - first.off
		var want int64
		for _, r := range win {
			want += r.length
		}
		if want*2 >= length && len(win) > 1 {
			bp := windowPool.Get().(*[]byte)
			defer windowPool.Put(bp)
			if int64(cap(*bp)) < length {
				*bp = make([]byte, length)
			}
			b := (*bp)[:length]
			if err := f.readAt(b, first.off); err != nil {
				return err
			}
			read += length
			for _, r := range win {
				copy(dst[r.pos:r.pos+r.length], b[r.off-first.off:r.off-first.off+r.length])
			}
			return nil
		}
		for _, r := range win {
			if err := f.readAt(dst[r.pos:r.pos+r.length], r.off); err != nil {
				return err
			}
			read += r.length
		}
		return nil
	}
	var err error
	p.visit(p0, p1, func(off, length, pos int64) bool {
		s := span{off, length, pos - p0}
		switch {
		case length >= preadDirect || !windows:
			if err = flush(); err == nil {
				win = append(win, s)
				err = flush()
			}
		case len(win) > 0 && (off < win[len(win)-1].off+win[len(win)-1].length || off+length-win[0].off > preadWindow):
			// A window holds runs in file order within preadWindow bytes.
			if err = flush(); err == nil {
				win = append(win, s)
			}
		default:
			win = append(win, s)
		}
		return err == nil
	})
	if err != nil {
		return read, err
	}
	return read, flush()
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

// ReadRanges copies the bytes of the ranges, in order, into dst, whose
// length must be their total; from the mapping when there is one.
func (f *File) ReadRanges(rs []Range, dst []byte) (int, error) {
	if err := f.checkRanges(rs, dst); err != nil {
		return 0, err
	}
	if f.data == nil {
		return f.ReadRangesPread(rs, dst)
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

// ReadRangesPread is ReadRanges reading with pread(2) (the file's ReadAt)
// instead of the mapping: no page faults, no mapped pages left resident.
func (f *File) ReadRangesPread(rs []Range, dst []byte) (int, error) {
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
