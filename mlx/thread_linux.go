package mlx

import "golang.org/x/sys/unix"

// threadID identifies the calling OS thread, so that calls made inside Do
// on the MLX thread run directly instead of queueing behind themselves.
func threadID() uintptr { return uintptr(unix.Gettid()) }

const haveThreadID = true

// osYield gives the core to another runnable thread, if there is one, while
// a call spins waiting: on a small machine MLX's own stream threads need
// the core more than the spinner does.
func osYield() { _, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }
