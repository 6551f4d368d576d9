package mlx

import "unsafe"

// The C calls themselves are generated (zbind.go, from capi/mlxc.h, by
// internal/mkbind): one typed function per C function, named as in C. This
// file holds the few helpers they and the hand-written layer share. Only the
// MLX thread calls any of them.

//go:generate go run ./internal/mkbind -header capi/mlxc.h -out zbind.go

// sym is the symbol table of the loaded library, set once by Load.
var sym symbolTable

func boolWord(b bool) uintptr {
	if b {
		return 1
	}
	return 0
}

// missingSymbol is what a generated call of an optional function returns
// when the loaded library lacks it: the error code, with a message that
// check turns into an *Error.
func missingSymbol(name string) int32 {
	lastError = lib.path + " has no " + name + " (an older or official libmlxc): rebuild the C ABI library"
	return 1
}

// optInt packs an mlx_optional_int ({int value; bool has_value}, 8 bytes)
// the way amd64 and arm64 both pass it: in one integer register, the value
// in the low 32 bits and has_value in the next byte.
func optInt(v int, has bool) uint64 {
	if !has {
		return 0
	}
	return uint64(uint32(int32(v))) | 1<<32
}

// optFloat packs an mlx_optional_float the same way: a struct of a float
// and a bool shares one eightbyte, which both ABIs pass as an integer.
func optFloat(v float32, has bool) uint64 {
	if !has {
		return 0
	}
	return uint64(*(*uint32)(unsafe.Pointer(&v))) | 1<<32
}

// goString copies a NUL-terminated C string.
func goString(p uintptr) string {
	if p == 0 {
		return ""
	}
	b := (*byte)(cPtr(p))
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(b), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(b, n))
}

// cString returns a NUL-terminated copy of s; keep it alive across the call.
func cString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// cPtr turns an address returned by C into a pointer. The memory is C's, so
// the garbage collector neither moves nor frees it; reading the bits through
// a *uintptr keeps vet's unsafeptr check (meant for Go memory) quiet.
func cPtr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// slot zeroes result slot i and returns it for C to write a handle into.
// The slots are globals because globals never move; only the MLX thread
// touches them.
func slot(i int) *uintptr {
	slots[i] = 0
	return &slots[i]
}

// escapeSink and escape make the compiler keep memory whose address is
// handed to C on the heap: a caller's stack can move while its address,
// already a uintptr, travels to the C call, but heap memory never moves.
var (
	escapeNever bool
	escapeSink  unsafe.Pointer
)

func escape(p unsafe.Pointer) {
	if escapeNever {
		escapeSink = p
	}
}

// cInts converts Go ints (shapes, axes, indices) to C ints.
func cInts(v []int) []int32 {
	out := make([]int32, len(v))
	for i, d := range v {
		out[i] = int32(d)
	}
	return out
}
