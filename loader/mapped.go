package loader

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// errCannotMap says a part cannot be backed by the file on this platform
// (or is empty); the loader copies it instead.
var errCannotMap = errors.New("loader: part cannot be backed by the file")

// mapPart returns an array over the file's bytes of a part that is one
// contiguous byte range (n bytes at file offset off), through a private (copy-on-write) mapping of the
// file handed to MLX as external memory.
//
// The mapping is writable and private: MLX may donate the buffer to an
// op's output and write into it, and those writes land in the process's
// own copies of the pages, never in the file or the page cache other
// processes share. What MLX does with the memory depends on its build (see
// mlx.NewArrayExternal): CPU and CUDA builds copy it into their own
// allocation at once, and the mapping is unmapped before this returns;
// Metal wraps it without a copy when its address is page-aligned (16 KiB),
// which needs the part to start on a page of the file, and unmaps it when
// the array is freed.
//
// Accounting: the array counts in MLX's active memory at its full size on
// every build (a copy is MLX's own allocation; Metal adds a wrapped
// buffer's length to active memory and puts it in its residency set), so
// the guard, which measures active memory, sees a mapped part as it sees a
// copied one, and the plan's peak holds. What changes on Metal is where the
// bytes live: in the file's pages, clean until written, which the kernel
// may drop under pressure and read back from the file instead of swapping.
// A private mapping is no snapshot: a file rewritten under a loaded model
// can show through pages not yet touched, which is why the loader checks
// the files before every section and why a checkpoint must not be rewritten
// while a model mapped from it is in use.
func mapPart(f *safetensors.File, off, n int64, shape []int, dt mlx.Dtype) (*mlx.Array, error) {
	if n == 0 {
		return nil, errCannotMap
	}
	m, err := mapRange(f.Path(), off, n)
	if err != nil {
		return nil, err
	}
	a, err := mlx.NewArrayExternal(unsafe.Pointer(unsafe.SliceData(m.data)), len(m.data), shape, dt, m.unmap)
	if err != nil {
		return nil, fmt.Errorf("backing the array by the file: %w", err)
	}
	return a, nil
}
