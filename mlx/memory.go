package mlx

func sizeGetter(fn func(*uintptr) int32, op string) (int64, error) {
	var v int64
	err := doErr(func() error {
		n := new(uintptr)
		err := check(op, fn(n))
		v = int64(*n)
		return err
	})
	return v, err
}

func sizeSetter(fn func(*uintptr, uintptr) int32, op string, limit int64) (int64, error) {
	var prev int64
	err := doErr(func() error {
		n := new(uintptr)
		err := check(op, fn(n, uintptr(limit)))
		prev = int64(*n)
		return err
	})
	return prev, err
}

// ActiveMemory is the number of bytes held by live arrays, cache excluded.
func ActiveMemory() (int64, error) {
	return sizeGetter(mlx_get_active_memory, "mlx_get_active_memory")
}

// PeakMemory is the highest ActiveMemory since start or ResetPeakMemory.
func PeakMemory() (int64, error) {
	return sizeGetter(mlx_get_peak_memory, "mlx_get_peak_memory")
}

// CacheMemory is the number of bytes MLX keeps cached for reuse.
func CacheMemory() (int64, error) {
	return sizeGetter(mlx_get_cache_memory, "mlx_get_cache_memory")
}

// MemoryLimit is the memory limit MLX tries to stay under.
func MemoryLimit() (int64, error) {
	return sizeGetter(mlx_get_memory_limit, "mlx_get_memory_limit")
}

// ResetPeakMemory sets the peak back to the current active memory.
func ResetPeakMemory() error {
	return doErr(func() error {
		return check("mlx_reset_peak_memory", mlx_reset_peak_memory())
	})
}

// ClearCache returns MLX's cached buffers to the system.
func ClearCache() error {
	return doErr(func() error {
		return check("mlx_clear_cache", mlx_clear_cache())
	})
}

// SetMemoryLimit sets the memory limit and returns the previous one.
func SetMemoryLimit(limit int64) (int64, error) {
	return sizeSetter(mlx_set_memory_limit, "mlx_set_memory_limit", limit)
}

// SetCacheLimit sets the cache limit and returns the previous one.
func SetCacheLimit(limit int64) (int64, error) {
	return sizeSetter(mlx_set_cache_limit, "mlx_set_cache_limit", limit)
}

// SetWiredLimit sets the wired (non-pageable) memory limit, which matters
// only on Metal, and returns the previous one.
func SetWiredLimit(limit int64) (int64, error) {
	return sizeSetter(mlx_set_wired_limit, "mlx_set_wired_limit", limit)
}

// MemoryStats is every memory figure at one moment.
type MemoryStats struct {
	Active, Peak, Cache int64
}

// Memory returns active, peak and cache memory in one call.
func Memory() (MemoryStats, error) {
	var m MemoryStats
	err := doErr(func() error {
		n := new(uintptr)
		for _, f := range []struct {
			fn  func(*uintptr) int32
			dst *int64
			op  string
		}{
			{mlx_get_active_memory, &m.Active, "mlx_get_active_memory"},
			{mlx_get_peak_memory, &m.Peak, "mlx_get_peak_memory"},
			{mlx_get_cache_memory, &m.Cache, "mlx_get_cache_memory"},
		} {
			if err := check(f.op, f.fn(n)); err != nil {
				return err
			}
			*f.dst = int64(*n)
		}
		return nil
	})
	return m, err
}
