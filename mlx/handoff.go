package mlx

import "time"

// The hand-off between callers and the MLX thread, on Go channels.

// handoff is the part of a call its caller waits on.
type handoff struct{ done chan struct{} }

var calls = make(chan *call, 1024)

func newCall() *call { return &call{handoff: handoff{done: make(chan struct{}, 1)}} }

// reset readies a pooled call for reuse (its channel is empty).
func (c *call) reset() {}

func enqueue(c *call) { calls <- c }

// queueEmpty reports whether no call waits for the MLX thread.
func queueEmpty() bool { return len(calls) == 0 }

// tryDequeue returns the next call, or nil when none is queued.
func tryDequeue() *call {
	select {
	case c := <-calls:
		return c
	default:
		return nil
	}
}

// sleepForCall waits, parked, for the next call.
func sleepForCall() *call { return <-calls }

func signalDone(c *call) { c.done <- struct{}{} }

func pollDone(c *call) bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// sleepUntilDone waits, parked, until c is done or d has passed, and
// reports whether c is done.
func sleepUntilDone(c *call, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}
