// Package safetensors reads and writes the safetensors file format and
// indexes checkpoint directories of many such files, without reading tensor
// data until asked.
//
// A file is an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// mapping tensor names to {dtype, shape, data_offsets} (plus an optional
// "__metadata__" of strings), then the tensors' bytes, row-major and
// little-endian. Open parses the header, validates it with every rule of the
// reference implementation (see Reason for the list) plus two it lacks —
// duplicate keys and non-string metadata are rejected — and maps the file
// read-only. The input is untrusted: a header that passes validation cannot
// make any later call read outside the file, and FuzzOpen holds that.
//
// Opening is cheap: only headers are read; data pages come in when Data
// (zero-copy, a slice of the mapping) or a Read method touches them. OpenDir
// opens a checkpoint directory — model.safetensors.index.json and its shard
// files, headers parsed in parallel — and checks the index against the
// headers, so that a tensor name identifies one file and one byte range.
//
// The reads that matter for tensor parallelism are of parts of tensors. A
// rank that holds part k of n along an axis needs only PartRanges: one range
// when the axes before the split have size 1, else one run per index of
// those axes. ReadPart copies exactly those bytes into a caller's buffer
// from the mapping (the default: fastest on warm pages); ReadPartAt does the
// same with pread, which is faster than page faults on cold files on macOS.
// AxisRanges and ReadAxis take an arbitrary [start, end) slice of an axis,
// which covers per-head splits and the segments of fused projections.
//
// A mapped file that another process truncates or rewrites in place after
// Open would raise SIGBUS on the next read of a vanished page. Every read
// this package makes from a mapping runs under Protect, which turns that
// fault into a *ChangedError (ErrChanged) naming the file; the slices Data
// hands out are the mapping itself, and are safe to read only inside
// Protect. Open and OpenDir refuse anything but regular files and
// directories (ErrNotRegular) before reading, since a FIFO would block.
//
// The Writer streams a file whose header is fixed up front, so a multi-GB
// file is never held in memory; it writes to a temporary file, syncs it and
// renames it (with mode 0666 less the umask, as os.Create gives), so a file
// another reader has mapped is replaced, never truncated, and a failed
// write leaves nothing behind.
//
// Memory mapping is used on darwin and linux; elsewhere a File reads through
// ReadAt, as one from NewReader does.
package safetensors
