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
// The reads that matter for tensor parallelism are of parts of tensors.
// TensorInfo.Part gives where any set of slices of one axis lies in the
// file — a rank's piece of a split tensor, its piece of every segment of a
// fused projection, a range of heads — without listing its runs, which
// Part.Ranges yields; PartRanges is the common case of part k of n equal
// parts. File.ReadPartAt copies any bytes of a Part into a caller's buffer,
// from the mapping, with pread, or both (ReadMode), under Protect, and
// counts them in BytesRead; ReadPart copies part k of n from the mapping.
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
