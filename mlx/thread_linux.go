package mlx

import "golang.org/x/sys/unix"

// threadID identifies the calling OS thread, so that calls made inside Do
// on the MLX thread run directly instead of queueing behind themselves.
func threadID() uintptr { return uintptr(unix.Gettid()) }

const haveThreadID = true
