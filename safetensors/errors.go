package safetensors

import (
	"errors"
	"fmt"
	"strings"
)

// ErrFormat is matched (with errors.Is) by every error that reports a file or
// checkpoint directory that breaks the format: *FormatError and *IndexError.
var ErrFormat = errors.New("safetensors: invalid format")

// ErrSplit is matched by every *SplitError.
var ErrSplit = errors.New("safetensors: invalid split")

// ErrChanged is matched by every *ChangedError: a mapped file that shrank
// or was rewritten in place while open, so that reading its mapping faulted.
var ErrChanged = errors.New("safetensors: file changed while open")

// ErrNotRegular is returned by Open and OpenDir for a path that is not a
// regular file (or, for OpenDir, a directory): a FIFO, a device or a socket,
// which reading would block on or never finish.
var ErrNotRegular = errors.New("safetensors: not a regular file")

// ChangedError reports a read of a mapped file that faulted because the file
// was truncated or rewritten in place after Open. The process keeps running;
// the file must be opened again.
type ChangedError struct {
	Path string  // file name, "" for a File from NewReader
	Addr uintptr // the address that faulted
}

func (e *ChangedError) Error() string {
	name := e.Path
	if name == "" {
		name = "the file"
	}
	return fmt.Sprintf("safetensors: %s was truncated or rewritten while open (reading its mapping faulted at %#x); open it again", name, e.Addr)
}

// Is makes errors.Is(err, ErrChanged) true.
func (e *ChangedError) Is(target error) bool { return target == ErrChanged }

// Reason classifies a *FormatError by the rule of the format the input
// breaks, so that callers and tests can tell the classes apart without
// parsing messages.
type Reason string

// The rules a file can break. They follow the reference implementation's
// checks, plus two it does not make (duplicate keys, and metadata values
// that are not strings, which it rejects only as malformed JSON).
const (
	ReasonFileTooSmall   Reason = "file-too-small"   // fewer than 8 bytes
	ReasonHeaderTooLarge Reason = "header-too-large" // header length over MaxHeaderSize
	ReasonHeaderPastEnd  Reason = "header-past-end"  // header length runs past the file
	ReasonUTF8           Reason = "header-utf8"      // header is not UTF-8
	ReasonJSON           Reason = "header-json"      // malformed JSON, wrong types, missing fields
	ReasonNotObject      Reason = "header-not-object"
	ReasonDuplicate      Reason = "duplicate-key"
	ReasonMetadata       Reason = "metadata" // __metadata__ is not an object of strings
	ReasonDtype          Reason = "unknown-dtype"
	ReasonOverflow       Reason = "size-overflow"  // shape × dtype overflows
	ReasonPartialByte    Reason = "partial-byte"   // sub-byte tensor does not end on a byte
	ReasonSizeMismatch   Reason = "size-mismatch"  // offsets disagree with shape × dtype
	ReasonOffsetOrder    Reason = "offset-order"   // end before begin
	ReasonGap            Reason = "gap"            // bytes no tensor covers
	ReasonOverlap        Reason = "overlap"        // bytes two tensors cover
	ReasonPastEnd        Reason = "past-end"       // a tensor runs past the data
	ReasonTrailing       Reason = "trailing-bytes" // data after the last tensor
	ReasonIndex          Reason = "index-mismatch" // used by *IndexError
)

// FormatError reports input that breaks the safetensors format: which rule,
// where, and for which tensor.
type FormatError struct {
	Path   string // file name, when known
	Tensor string // tensor concerned, or ""
	Offset int64  // byte offset in the file where the problem lies, or -1
	Reason Reason
	Detail string // the rule broken, with the offending numbers
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q ", e.Tensor)
	}
	b.WriteString(e.Detail)
	return b.String()
}

// Is makes errors.Is(err, ErrFormat) true.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

func formatErr(reason Reason, tensor string, off int64, format string, args ...any) *FormatError {
	return &FormatError{Tensor: tensor, Offset: off, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// IndexError reports a checkpoint directory whose index and shard file
// headers disagree: a tensor the index maps to a file that lacks it, a
// tensor in a file the index maps elsewhere or not at all, or a tensor held
// by two files.
type IndexError struct {
	Tensor string
	Files  []string // the shard files concerned
	Detail string
}

func (e *IndexError) Error() string {
	if e.Tensor == "" {
		return "safetensors: " + e.Detail
	}
	return fmt.Sprintf("safetensors: tensor %q %s", e.Tensor, e.Detail)
}

// Is makes errors.Is(err, ErrFormat) true.
func (e *IndexError) Is(target error) bool { return target == ErrFormat }

// SplitError reports a slice of a tensor that cannot be taken: an axis out of
// range, a part count that does not divide the axis, or a cut inside a byte
// of a sub-byte dtype.
type SplitError struct {
	Tensor string
	Axis   int
	Dim    int64 // size of the axis, or -1 when the axis does not exist
	N      int   // number of parts, or 0 for a [Start, End) slice
	Start  int64
	End    int64
	Detail string
}

func (e *SplitError) Error() string {
	return fmt.Sprintf("safetensors: tensor %q %s", e.Tensor, e.Detail)
}

// Is makes errors.Is(err, ErrSplit) true.
func (e *SplitError) Is(target error) bool { return target == ErrSplit }
