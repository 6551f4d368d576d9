package mlx

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// The hand-off between callers and the MLX thread, on futexes. Through Go
// channels, waking the MLX thread's goroutine, which is locked to its
// thread, goes through the scheduler: the caller's processor queues it,
// another thread takes it and passes the processor to the locked thread,
// and the result comes back the same way, several thread switches per call
// where a core is scarce. Here a caller queues the call and, if the MLX
// thread sleeps, wakes that thread itself with one system call; the MLX
// thread wakes a sleeping caller the same way. Both sleep in the kernel
// (a blocking system call, so the Go scheduler lends their processor out).

const (
	futexWaitPrivate = 128 | 0
	futexWakePrivate = 128 | 1
)

// futexWait sleeps while *w == v, at most d when d > 0; it may return early.
func futexWait(w *atomic.Uint32, v uint32, d time.Duration) {
	var ts *syscall.Timespec
	if d > 0 {
		t := syscall.NsecToTimespec(int64(d))
		ts = &t
	}
	_, _, _ = syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWaitPrivate, uintptr(v), uintptr(unsafe.Pointer(ts)), 0, 0)
}

func futexWake(w *atomic.Uint32) {
	_, _, _ = syscall.Syscall6(syscall.SYS_FUTEX, uintptr(unsafe.Pointer(w)), futexWakePrivate, 1, 0, 0, 0)
}

// handoff is the part of a call its caller waits on: state is 0 while the
// call is pending, 1 once done, 2 while the caller sleeps on it.
type handoff struct{ state atomic.Uint32 }

func newCall() *call { return new(call) }

// reset readies a pooled call for reuse.
func (c *call) reset() { c.state.Store(0) }

var (
	queueMu sync.Mutex
	queue   []*call
	queued  atomic.Int32 // len(queue), read without the lock
	// workerAsleep is 1 while the MLX thread sleeps waiting for a call.
	workerAsleep atomic.Uint32
)

func enqueue(c *call) {
	queueMu.Lock()
	queue = append(queue, c)
	queued.Store(int32(len(queue)))
	queueMu.Unlock()
	if workerAsleep.Load() == 1 && workerAsleep.CompareAndSwap(1, 0) {
		futexWake(&workerAsleep)
	}
}

// queueEmpty reports whether no call waits for the MLX thread.
func queueEmpty() bool { return queued.Load() == 0 }

// tryDequeue returns the next call, or nil when none is queued.
func tryDequeue() *call {
	if queued.Load() == 0 {
		return nil
	}
	queueMu.Lock()
	defer queueMu.Unlock()
	if len(queue) == 0 {
		return nil
	}
	c := queue[0]
	n := copy(queue, queue[1:])
	queue[n] = nil
	queue = queue[:n]
	queued.Store(int32(n))
	return c
}

// sleepForCall waits, asleep in the kernel, for the next call.
func sleepForCall() *call {
	for {
		if c := tryDequeue(); c != nil {
			return c
		}
		workerAsleep.Store(1)
		// A call queued before the flag was set saw no sleeper to wake.
		if queued.Load() == 0 {
			futexWait(&workerAsleep, 1, 0)
		}
		workerAsleep.Store(0)
	}
}

func signalDone(c *call) {
	if c.state.Swap(1) == 2 {
		futexWake(&c.state)
	}
}

func pollDone(c *call) bool { return c.state.Load() == 1 }

// sleepUntilDone waits, asleep in the kernel, until c is done or about d
// has passed, and reports whether c is done.
func sleepUntilDone(c *call, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		c.state.CompareAndSwap(0, 2)
		futexWait(&c.state, 2, d)
		if c.state.Load() == 1 {
			return true
		}
		// Woken early (a signal, a stale wake of a reused call).
		if d = time.Until(deadline); d <= 0 {
			return false
		}
	}
}
