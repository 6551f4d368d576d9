//go:build !linux && !darwin

package mlx

// threadID is unknown here: Do runs its function on the caller's goroutine
// and each call inside it makes its own trip to the MLX thread.
func threadID() uintptr { return 0 }

const haveThreadID = false

func osYield() {}
