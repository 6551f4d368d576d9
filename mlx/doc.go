// Package mlx drives Apple's MLX from Go without cgo.
//
// MLX is C++; Go can only call C. This package binds MLX's C API (the
// functions, signatures and conventions of mlx-c, the API behind MLX's
// Swift, Rust and Zig bindings) through purego, loading the library at run
// time: the official libmlxc where it is installed, or the small C ABI
// library this module compiles against pip's MLX wheel (mlx/capi).
//
// # Getting MLX
//
// A program that imports this package needs MLX on the machine once:
//
//	go run github.com/mlxdist/mlxdist/mlx/setup
//
// installs pip MLX PinnedVersion into a private environment under the user's
// cache directory (CacheDir) and builds the C ABI library there; Load finds
// it with nothing to set, and refuses an installation that did not finish.
// Load's error names the exact command for the module version the program
// was built with (SetupCommand). In a checkout of the repository `make
// setup` runs the same command into build/. MLX_C_LIBRARY overrides all of
// it; see Load for every place searched.
//
// # Threads
//
// MLX keeps default streams per OS thread and Metal's encoders are
// thread-local, while Go moves goroutines between threads. So the C calls
// run on one goroutine locked to one OS thread; callers on any goroutine
// wait for it. Calls from many goroutines are safe and serialised. Two
// kinds of call skip that trip, being safe on any thread and cheaper than
// the trip: making an array from data (FromSlice, NewArrayBytes,
// NewArrayFill) and freeing one, which happens on the caller's thread
// unless the MLX thread is busy, and then in order behind the calls handed
// to it before.
//
// # Errors
//
// mlx-c reports errors to a process-wide handler whose default prints and
// exits. This package installs its own handler before any other call and
// turns the message into an *Error returned by the call that failed. An
// MLX error never ends the process.
//
// # Memory and ownership
//
// Every *Array returned is owned by the caller; Free releases it at once
// (and is safe to call twice). Ops are lazy: an unevaluated array keeps its
// inputs alive, and an evaluated view (a slice, a reshape) keeps its
// parent's whole buffer alive; Contiguous gives a slice a buffer of its own.
// That is the whole reason eval → shard → eval loading works, and why
// building every shard's graph first does not. ActiveMemory, PeakMemory and
// ClearCache give the figures a memory guard needs.
//
// A short tour:
//
//	a, _ := mlx.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
//	defer a.Free()
//	b, _ := mlx.Transpose(a)
//	defer b.Free()
//	c, err := mlx.Matmul(a, b) // lazy
//	if err != nil { ... }      // shape errors name the shapes
//	defer c.Free()
//	v, _ := mlx.ToSlice[float32](c) // evaluates: [14 32 32 77]
package mlx
