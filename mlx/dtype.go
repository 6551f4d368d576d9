package mlx

import "fmt"

// Dtype is an MLX element type. The values are mlx-c's mlx_dtype.
type Dtype int32

const (
	Bool Dtype = iota
	Uint8
	Uint16
	Uint32
	Uint64
	Int8
	Int16
	Int32
	Int64
	Float16
	Float32
	Float64
	Bfloat16
	Complex64
)

var dtypeInfo = [...]struct {
	name string
	size int
}{
	Bool: {"bool", 1}, Uint8: {"uint8", 1}, Uint16: {"uint16", 2}, Uint32: {"uint32", 4},
	Uint64: {"uint64", 8}, Int8: {"int8", 1}, Int16: {"int16", 2}, Int32: {"int32", 4},
	Int64: {"int64", 8}, Float16: {"float16", 2}, Float32: {"float32", 4}, Float64: {"float64", 8},
	Bfloat16: {"bfloat16", 2}, Complex64: {"complex64", 8},
}

// Dtypes returns every MLX dtype, in mlx_dtype order.
func Dtypes() []Dtype {
	out := make([]Dtype, len(dtypeInfo))
	for i := range out {
		out[i] = Dtype(i)
	}
	return out
}

// Valid reports whether d is one of the MLX dtypes.
func (d Dtype) Valid() bool { return d >= 0 && int(d) < len(dtypeInfo) }

// Size is the number of bytes of one element.
func (d Dtype) Size() int {
	if !d.Valid() {
		return 0
	}
	return dtypeInfo[d].size
}

// String is MLX's Python name of the dtype ("bfloat16").
func (d Dtype) String() string {
	if !d.Valid() {
		return fmt.Sprintf("Dtype(%d)", int32(d))
	}
	return dtypeInfo[d].name
}

// ParseDtype is the inverse of String.
func ParseDtype(s string) (Dtype, error) {
	for _, d := range Dtypes() {
		if d.String() == s {
			return d, nil
		}
	}
	return 0, fmt.Errorf("mlx: unknown dtype %q", s)
}

// Element is the set of Go types that map one-to-one onto an MLX dtype.
// float16 and bfloat16 have no Go type: use their raw 16-bit words (uint16)
// with NewArrayBytes / Array.Bytes, or convert with astype.
type Element interface {
	bool | uint8 | uint16 | uint32 | uint64 | int8 | int16 | int32 | int64 |
		float32 | float64 | complex64
}

func dtypeOf[T Element]() Dtype {
	var z T
	switch any(z).(type) {
	case bool:
		return Bool
	case uint8:
		return Uint8
	case uint16:
		return Uint16
	case uint32:
		return Uint32
	case uint64:
		return Uint64
	case int8:
		return Int8
	case int16:
		return Int16
	case int32:
		return Int32
	case int64:
		return Int64
	case float32:
		return Float32
	case float64:
		return Float64
	case complex64:
		return Complex64
	}
	panic("unreachable: Element has no other types")
}
