package mlx

import "github.com/ebitengine/purego"

// ccall calls the C function at fn with integer-class arguments and returns
// its integer result, through purego.
func ccall(fn uintptr, args ...uintptr) uintptr {
	r, _, _ := purego.SyscallN(fn, args...)
	return r
}
