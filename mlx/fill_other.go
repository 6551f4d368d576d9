//go:build !linux

package mlx

// prefault does nothing where the OS offers no bulk fault-in of anonymous
// memory (macOS: Metal's unified memory is allocated by the driver).
func prefault([]byte) {}

// prefaults says that prefault does something on this OS.
const prefaults = false
