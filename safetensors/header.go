package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxHeaderSize is the largest header length the reference implementation
// accepts (100,000,000 bytes); a longer one is rejected before it is read.
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// TensorInfo describes one tensor of a file, as its header entry says.
type TensorInfo struct {
	Name  string
	Dtype Dtype
	Shape []int64
	// Begin and End are the header's data_offsets: the byte range relative
	// to the start of the data section.
	Begin, End int64
	// Offset is the absolute position of the tensor's first byte in the
	// file: Begin plus 8 plus the header length.
	Offset int64
	// File is the path of the file holding the tensor, as it was opened
	// ("" for a File made by NewReader).
	File string
}

// Size returns the tensor's size in bytes.
func (t TensorInfo) Size() int64 { return t.End - t.Begin }

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

type header struct {
	tensors  []TensorInfo // header order
	byName   map[string]int
	metadata map[string]string
	dataLen  int64 // bytes after the header
	dataOff  int64 // 8 + header length
}

// readHeader reads and validates the header of a file of the given size.
func readHeader(r io.ReaderAt, size int64) (*header, error) {
	if size < 8 {
		return nil, formatErr(ReasonFileTooSmall, "", 0, "file of %d bytes is shorter than the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, formatErr(ReasonHeaderTooLarge, "", 0, "header length %d exceeds the limit of %d", n, MaxHeaderSize)
	}
	if int64(n) > size-8 {
		return nil, formatErr(ReasonHeaderPastEnd, "", 0, "header length %d runs past file end %d", n, size)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, 8); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, err
	}
	return parseHeader(buf, size)
}

func parseHeader(buf []byte, size int64) (*header, error) {
	h := &header{dataOff: 8 + int64(len(buf))}
	h.dataLen = size - h.dataOff
	if !utf8.Valid(buf) {
		i := 0
		for i < len(buf) {
			r, w := utf8.DecodeRune(buf[i:])
			if r == utf8.RuneError && w == 1 {
				break
			}
			i += w
		}
		return nil, formatErr(ReasonUTF8, "", 8+int64(i), "header has invalid UTF-8 at byte %d", 8+i)
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	dec.UseNumber()
	jsonErr := func(err error) error {
		return formatErr(ReasonJSON, "", 8+dec.InputOffset(), "header is not valid JSON at byte %d: %v", 8+dec.InputOffset(), err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, formatErr(ReasonNotObject, "", 8, "header is not a JSON object")
	}
	// The tensor count is unknown until the end; a guess from the header
	// length (an entry takes ~60 bytes) avoids most regrowth.
	h.tensors = make([]TensorInfo, 0, len(buf)/64+1)
	h.byName = make(map[string]int, len(buf)/64+1)
	sawMetadata := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		key := tok.(string) // the decoder only yields strings as object keys
		keyOff := 8 + dec.InputOffset()
		if key == metadataKey {
			if sawMetadata {
				return nil, formatErr(ReasonDuplicate, "", keyOff, "header has key %q twice", key)
			}
			sawMetadata = true
			if h.metadata, err = parseMetadata(dec); err != nil {
				return nil, err
			}
			continue
		}
		if _, dup := h.byName[key]; dup {
			return nil, formatErr(ReasonDuplicate, key, keyOff, "appears twice in the header")
		}
		var e struct {
			Dtype   *string   `json:"dtype"`
			Shape   *[]uint64 `json:"shape"`
			Offsets *[]uint64 `json:"data_offsets"`
		}
		if err := dec.Decode(&e); err != nil {
			return nil, jsonErr(err)
		}
		var missing []string
		if e.Dtype == nil {
			missing = append(missing, "dtype")
		}
		if e.Shape == nil {
			missing = append(missing, "shape")
		}
		if e.Offsets == nil {
			missing = append(missing, "data_offsets")
		}
		if missing != nil {
			return nil, formatErr(ReasonJSON, key, keyOff, "lacks %s", strings.Join(missing, ", "))
		}
		if len(*e.Offsets) != 2 {
			return nil, formatErr(ReasonJSON, key, keyOff, "has %d data_offsets, want 2", len(*e.Offsets))
		}
		dt, err := ParseDtype(*e.Dtype)
		if err != nil {
			return nil, formatErr(ReasonDtype, key, keyOff, "has unknown dtype %q", *e.Dtype)
		}
		t := TensorInfo{Name: key, Dtype: dt, Shape: make([]int64, len(*e.Shape))}
		for i, d := range *e.Shape {
			if d > math.MaxInt64 {
				return nil, formatErr(ReasonOverflow, key, keyOff, "has dimension %d too large", d)
			}
			t.Shape[i] = int64(d)
		}
		b, end := (*e.Offsets)[0], (*e.Offsets)[1]
		if b > math.MaxInt64 || end > math.MaxInt64 {
			return nil, formatErr(ReasonPastEnd, key, keyOff, "has offsets [%d, %d] past data end %d", b, end, h.dataLen)
		}
		t.Begin, t.End = int64(b), int64(end)
		t.Offset = h.dataOff + t.Begin
		h.byName[key] = len(h.tensors)
		h.tensors = append(h.tensors, t)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, jsonErr(err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("trailing data after the object: " + tokenString(tok))
		}
		return nil, jsonErr(err)
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	return h, nil
}

func tokenString(tok json.Token) string {
	b, _ := json.Marshal(tok)
	return string(b)
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	off := 8 + dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return nil, formatErr(ReasonJSON, "", off, "header is not valid JSON at byte %d: %v", off, err)
	}
	if tok == nil {
		return nil, nil // the reference accepts "__metadata__": null
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, formatErr(ReasonMetadata, "", off, "__metadata__ is not an object of strings")
	}
	md := map[string]string{}
	for dec.More() {
		off = 8 + dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, formatErr(ReasonJSON, "", off, "header is not valid JSON at byte %d: %v", off, err)
		}
		k := tok.(string)
		if _, dup := md[k]; dup {
			return nil, formatErr(ReasonDuplicate, "", off, "__metadata__ has key %q twice", k)
		}
		off = 8 + dec.InputOffset()
		tok, err = dec.Token()
		if err != nil {
			return nil, formatErr(ReasonJSON, "", off, "header is not valid JSON at byte %d: %v", off, err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, formatErr(ReasonMetadata, "", off, "__metadata__ value of %q is not a string", k)
		}
		md[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, formatErr(ReasonJSON, "", off, "header is not valid JSON: %v", err)
	}
	return md, nil
}

// byteSize returns the size in bytes of a tensor of the given dtype and
// shape, checking for overflow and for sub-byte kinds that end mid-byte.
func byteSize(dt Dtype, shape []int64) (int64, Reason, bool) {
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 {
			return 0, ReasonOverflow, false
		}
		n = lo
	}
	hi, nbits := bits.Mul64(n, uint64(dt.Bits()))
	if hi != 0 || nbits/8 > math.MaxInt64 {
		return 0, ReasonOverflow, false
	}
	if nbits%8 != 0 {
		return 0, ReasonPartialByte, false
	}
	return int64(nbits / 8), "", true
}

// validate applies the reference implementation's rules to the entries:
// sorted by offsets they tile the data exactly, and each one's size is its
// shape × dtype.
func (h *header) validate() error {
	order := make([]int32, len(h.tensors))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		ta, tb := &h.tensors[a], &h.tensors[b]
		if ta.Begin != tb.Begin {
			if ta.Begin < tb.Begin {
				return -1
			}
			return 1
		}
		if ta.End != tb.End {
			if ta.End < tb.End {
				return -1
			}
			return 1
		}
		return 0
	})
	var at int64
	for _, i := range order {
		t := &h.tensors[i]
		switch {
		case t.End < t.Begin:
			return formatErr(ReasonOffsetOrder, t.Name, t.Offset, "ends at %d before it begins at %d", t.End, t.Begin)
		case t.Begin > at:
			return formatErr(ReasonGap, t.Name, h.dataOff+at, "begins at %d, leaving bytes [%d, %d) of the data unused", t.Begin, at, t.Begin)
		case t.Begin < at:
			return formatErr(ReasonOverlap, t.Name, t.Offset, "begins at %d, inside data already used up to %d", t.Begin, at)
		}
		want, reason, ok := byteSize(t.Dtype, t.Shape)
		switch {
		case !ok && reason == ReasonOverflow:
			return formatErr(reason, t.Name, t.Offset, "of shape %v and dtype %s overflows a 64-bit byte count", t.Shape, t.Dtype)
		case !ok:
			return formatErr(reason, t.Name, t.Offset, "of shape %v and dtype %s does not end on a byte boundary", t.Shape, t.Dtype)
		case t.End-t.Begin != want:
			return formatErr(ReasonSizeMismatch, t.Name, t.Offset, "has %d bytes [%d, %d) but shape %v of %s needs %d", t.End-t.Begin, t.Begin, t.End, t.Shape, t.Dtype, want)
		case t.End > h.dataLen:
			return formatErr(ReasonPastEnd, t.Name, t.Offset, "ends at %d past data end %d", t.End, h.dataLen)
		}
		at = t.End
	}
	if at != h.dataLen {
		return formatErr(ReasonTrailing, "", h.dataOff+at, "file has %d bytes after the last tensor ends at data offset %d", h.dataLen-at, at)
	}
	return nil
}
