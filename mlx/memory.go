package mlx

import (
	"unsafe"

	"github.com/ebitengine/purego"
)

func sizeGetter(fn func() uintptr, op string) (uint64, error) {
	var v uint64
	err := doErr(func() error {
		var n uintptr
		rc, _, _ := purego.SyscallN(fn(), uintptr(unsafe.Pointer(&n)))
		v = uint64(n)
		return check(op, rc)
	})
	return v, err
}

func sizeSetter(fn func() uintptr, op string, limit uint64) (uint64, error) {
	var prev uint64
	err := doErr(func() error {
		var n uintptr
		rc, _, _ := purego.SyscallN(fn(), uintptr(unsafe.Pointer(&n)), uintptr(limit))
		prev = uint64(n)
		return check(op, rc)
	})
	return prev, err
}

// ActiveMemory is the number of bytes held by live arrays, cache excluded.
func ActiveMemory() (uint64, error) {
	return sizeGetter(func() uintptr { return lib.sym.activeMemory }, "mlx_get_active_memory")
}

// PeakMemory is the highest ActiveMemory since start or ResetPeakMemory.
func PeakMemory() (uint64, error) {
	return sizeGetter(func() uintptr { return lib.sym.peakMemory }, "mlx_get_peak_memory")
}

// CacheMemory is the number of bytes MLX keeps cached for reuse.
func CacheMemory() (uint64, error) {
	return sizeGetter(func() uintptr { return lib.sym.cacheMemory }, "mlx_get_cache_memory")
}

// MemoryLimit is the memory limit MLX tries to stay under.
func MemoryLimit() (uint64, error) {
	return sizeGetter(func() uintptr { return lib.sym.memoryLimit }, "mlx_get_memory_limit")
}

// ResetPeakMemory sets the peak back to the current active memory.
func ResetPeakMemory() error {
	return doErr(func() error {
		rc, _, _ := purego.SyscallN(lib.sym.resetPeakMemory)
		return check("mlx_reset_peak_memory", rc)
	})
}

// ClearCache returns MLX's cached buffers to the system.
func ClearCache() error {
	return doErr(func() error {
		rc, _, _ := purego.SyscallN(lib.sym.clearCache)
		return check("mlx_clear_cache", rc)
	})
}

// SetMemoryLimit sets the memory limit and returns the previous one.
func SetMemoryLimit(limit uint64) (uint64, error) {
	return sizeSetter(func() uintptr { return lib.sym.setMemoryLimit }, "mlx_set_memory_limit", limit)
}

// SetCacheLimit sets the cache limit and returns the previous one.
func SetCacheLimit(limit uint64) (uint64, error) {
	return sizeSetter(func() uintptr { return lib.sym.setCacheLimit }, "mlx_set_cache_limit", limit)
}

// SetWiredLimit sets the wired (non-pageable) memory limit, which matters
// only on Metal, and returns the previous one.
func SetWiredLimit(limit uint64) (uint64, error) {
	return sizeSetter(func() uintptr { return lib.sym.setWiredLimit }, "mlx_set_wired_limit", limit)
}

// MemoryStats is every memory figure at one moment.
type MemoryStats struct {
	Active, Peak, Cache uint64
}

// Memory returns active, peak and cache memory in one call.
func Memory() (MemoryStats, error) {
	var m MemoryStats
	err := doErr(func() error {
		for _, f := range []struct {
			fn  uintptr
			dst *uint64
			op  string
		}{
			{lib.sym.activeMemory, &m.Active, "mlx_get_active_memory"},
			{lib.sym.peakMemory, &m.Peak, "mlx_get_peak_memory"},
			{lib.sym.cacheMemory, &m.Cache, "mlx_get_cache_memory"},
		} {
			var n uintptr
			rc, _, _ := purego.SyscallN(f.fn, uintptr(unsafe.Pointer(&n)))
			if err := check(f.op, rc); err != nil {
				return err
			}
			*f.dst = uint64(n)
		}
		return nil
	})
	return m, err
}
