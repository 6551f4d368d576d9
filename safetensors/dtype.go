package safetensors

import "fmt"

// Dtype is the element type of a tensor, as named in the header's "dtype"
// field. The zero value is not a valid Dtype.
type Dtype uint8

// The element types the reference implementation (safetensors 0.8) accepts.
// F4, F6E2M3 and F6E3M2 are sub-byte kinds: their elements are packed, so a
// tensor's byte size is bits × elements / 8 and must come out whole.
const (
	Bool Dtype = iota + 1
	F4
	F6E2M3
	F6E3M2
	U8
	I8
	F8E5M2
	F8E4M3
	F8E8M0
	F8E4M3FNUZ
	F8E5M2FNUZ
	I16
	U16
	F16
	BF16
	I32
	U32
	F32
	C64
	F64
	I64
	U64
)

var dtypeTable = [...]struct {
	name string
	bits int
}{
	Bool:       {"BOOL", 8},
	F4:         {"F4", 4},
	F6E2M3:     {"F6_E2M3", 6},
	F6E3M2:     {"F6_E3M2", 6},
	U8:         {"U8", 8},
	I8:         {"I8", 8},
	F8E5M2:     {"F8_E5M2", 8},
	F8E4M3:     {"F8_E4M3", 8},
	F8E8M0:     {"F8_E8M0", 8},
	F8E4M3FNUZ: {"F8_E4M3FNUZ", 8},
	F8E5M2FNUZ: {"F8_E5M2FNUZ", 8},
	I16:        {"I16", 16},
	U16:        {"U16", 16},
	F16:        {"F16", 16},
	BF16:       {"BF16", 16},
	I32:        {"I32", 32},
	U32:        {"U32", 32},
	F32:        {"F32", 32},
	C64:        {"C64", 64},
	F64:        {"F64", 64},
	I64:        {"I64", 64},
	U64:        {"U64", 64},
}

// Dtypes returns every valid Dtype, in the order of their bit widths.
func Dtypes() []Dtype {
	out := make([]Dtype, 0, len(dtypeTable)-1)
	for d := Bool; int(d) < len(dtypeTable); d++ {
		out = append(out, d)
	}
	return out
}

func (d Dtype) valid() bool { return d > 0 && int(d) < len(dtypeTable) }

// String returns the header spelling of d ("BF16", "F8_E4M3").
func (d Dtype) String() string {
	if !d.valid() {
		return fmt.Sprintf("Dtype(%d)", uint8(d))
	}
	return dtypeTable[d].name
}

// Bits returns the width of one element in bits (4 for F4, 16 for BF16), or
// 0 for an invalid Dtype.
func (d Dtype) Bits() int {
	if !d.valid() {
		return 0
	}
	return dtypeTable[d].bits
}

// Size returns the size of one element in bytes, or 0 for the sub-byte kinds
// and invalid Dtypes: their sizes only exist for a whole tensor.
func (d Dtype) Size() int {
	if b := d.Bits(); b%8 == 0 {
		return b / 8
	}
	return 0
}

// ParseDtype returns the Dtype spelled s in a header. Spellings are
// case-sensitive, as in the reference implementation.
func ParseDtype(s string) (Dtype, error) {
	for d := Bool; int(d) < len(dtypeTable); d++ {
		if dtypeTable[d].name == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("safetensors: unknown dtype %q", s)
}

// MarshalText implements encoding.TextMarshaler with the header spelling.
func (d Dtype) MarshalText() ([]byte, error) {
	if !d.valid() {
		return nil, fmt.Errorf("safetensors: invalid dtype %d", uint8(d))
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with the header spelling.
func (d *Dtype) UnmarshalText(b []byte) error {
	v, err := ParseDtype(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
