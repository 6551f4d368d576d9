package mlx

import (
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"
)

// The C calls run on one goroutine locked to one OS thread: MLX keeps its
// default streams per thread (and Metal its command encoders), and Go moves
// goroutines between threads freely. Callers on any goroutine hand the
// worker a closure and wait for it; the worker runs closures one at a time,
// which also serialises access to MLX's process-wide state. The exceptions,
// calls that are safe on any thread, are making an array from data (MLX's
// allocator takes its own lock; the array has no graph) and freeing an
// array (see freeHandle).

type call struct {
	fn       func()
	posted   bool         // fire-and-forget: nobody waits for it
	panicked *ThreadPanic // set when fn panicked
	handoff               // how the caller learns the call is done
}

// ThreadPanic is what a panic on the MLX thread becomes: it is raised again
// on the goroutine whose call panicked (so that goroutine's stack is the
// one printed), carrying the original value and the MLX thread's stack.
type ThreadPanic struct {
	Value any
	Stack []byte // the MLX thread's stack when it panicked
}

func (p *ThreadPanic) Error() string {
	return fmt.Sprintf("mlx: panic on the MLX thread: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the original value when it is an error (a runtime error,
// say), so errors.As still finds it.
func (p *ThreadPanic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// Handing a call to a thread that is parked costs a futex wake-up of that
// very thread (the worker's goroutine is locked to it), tens of
// microseconds on a busy machine. So both sides spin for a while before
// they park: the worker after each call, waiting for the next, and a caller
// waiting for its result. Every yieldEvery polls the spinner yields its
// core: while the MLX thread waits in an eval, MLX's stream thread needs
// that core (on two cores a hard spin made a tiny op + eval 2.4x slower
// than Python's instead of 0.7x).
//
// How long to spin adapts, as an adaptive mutex does: a wait that ended
// while spinning doubles the side's budget (up to maxSpin polls), a wait
// that had to park and lasted longer than a whole maxSpin spin halves it
// (down to minSpin). Short calls in a burst stay on the fast path; long
// ones (a big eval, a collective waiting for a peer that is late) stop
// burning a core that MLX's own threads, or another rank's, need. A parked
// wait that a whole spin would have covered grows the budget to twice its
// length instead: without that, once a few slow waits had halved the
// budget to minSpin, waits of tens of microseconds (a collective on a
// quiet link) parked for ever, each paying the wake-up the spin exists to
// save (measured on 16 cores: a 4-byte all-sum and eval per trip took 2.0x
// Python's).
//
// A spin also ends after maxSpinTime, whatever its budget: each yield can
// hand the core to another thread for a whole time slice, and on a loaded
// machine a spin of maxSpin polls then lasted past a third of a second.
const (
	minSpin     = 16
	maxSpin     = 4096
	yieldEvery  = 16
	maxSpinTime = 500 * time.Microsecond
)

// spinBudget is one side's adaptive spin length, in polls.
type spinBudget struct{ n atomic.Int32 }

func (b *spinBudget) polls() int {
	n := int(b.n.Load())
	if n == 0 {
		return maxSpin
	}
	return n
}

// done records a wait that ended during its spin of polls.
func (b *spinBudget) done(polls int) {
	b.n.Store(int32(min(polls*2, maxSpin)))
}

// parked records a wait that spun polls in spun, then parked, and ended
// waited after it began.
func (b *spinBudget) parked(polls int, spun, waited time.Duration) {
	perPoll := max(spun/time.Duration(polls), 1)
	if covered := int64(waited / perPoll); covered <= maxSpin {
		b.n.Store(int32(min(max(polls*2, int(2*covered), minSpin), maxSpin)))
		return
	}
	b.n.Store(int32(max(polls/2, minSpin)))
}

var workerSpin, callerSpin spinBudget

var (
	callPool = sync.Pool{New: func() any { return newCall() }}

	// lastError is the message the error handler received during the call
	// now running on the worker; only the worker thread touches it.
	lastError string

	// slots receive the handles C writes through result pointers. They are
	// globals because globals never move: a result slot on a goroutine stack
	// could be moved by stack growth between taking its address and the C
	// call writing to it. Only the MLX thread touches them.
	slots [2]uintptr

	// pendingFrees holds handles of arrays collected by the garbage
	// collector without an explicit Free; the worker frees them before its
	// next call.
	pendingMu    sync.Mutex
	pendingFrees []uintptr
	pendingN     atomic.Int32 // len(pendingFrees), read without the lock

	// workerTID is the MLX thread's id; batching counts the Do calls now
	// running on it. A call made while batching > 0 from the MLX thread
	// itself is a call from inside Do and runs at once.
	workerTID uintptr
	batching  atomic.Int32

	// running is odd while the MLX thread runs a call (a Do counts as one),
	// even between calls. See freeHandle.
	running atomic.Uint64

	// threadErrors holds the MLX error messages reported on threads other
	// than the MLX thread, by thread id, until the failed call takes its own.
	threadErrMu  sync.Mutex
	threadErrors = map[uintptr]string{}

	// trips counts the calls handed to the MLX thread (Do counts one).
	trips atomic.Int64

	// waiting counts the MLX thread's calls into MLX that wait for work to
	// finish (evaluations, synchronisation): a call queued behind a Do that
	// is in one of those is waiting for MLX, not for a deadlock.
	waiting atomic.Int32
	// waits counts those calls ever started.
	waits atomic.Int64
)

// waitingFor marks the MLX thread as inside a call that waits for MLX's
// work; defer the function it returns.
func waitingFor() func() {
	waits.Add(1)
	waiting.Add(1)
	return func() { waiting.Add(-1) }
}

func startWorker() error {
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		workerTID = threadID()
		// The handler must be in place before any other call: mlx-c's
		// default handler exits the process.
		mlx_set_error_handler(errorHandlerCallback(), 0, 0)
		close(ready)
		for {
			c := nextCall()
			drainFrees()
			running.Add(1)
			run(c)
			running.Add(1)
			if !c.posted {
				signalDone(c)
			}
		}
	}()
	<-ready
	return nil
}

// run runs one call, catching a panic so that it reaches the caller instead
// of ending the process from the MLX thread.
func run(c *call) {
	defer func() {
		if p := recover(); p != nil {
			tp, ok := p.(*ThreadPanic)
			if !ok {
				tp = &ThreadPanic{Value: p, Stack: debug.Stack()}
			}
			if c.posted {
				// Nobody waits for a posted call: there is no caller to
				// hand the panic to, and a silent failure would hide a bug.
				panic(tp)
			}
			c.panicked = tp
		}
	}()
	c.fn()
}

// nextCall polls for a call for a while, then parks until one comes.
func nextCall() *call {
	n := workerSpin.polls()
	start := time.Now()
	for i := 0; i < n; i++ {
		if c := tryDequeue(); c != nil {
			workerSpin.done(n)
			return c
		}
		if i%yieldEvery == yieldEvery-1 {
			osYield()
			if time.Since(start) > maxSpinTime {
				n = i + 1
				break
			}
		}
	}
	spun := time.Since(start)
	c := sleepForCall()
	workerSpin.parked(n, spun, time.Since(start))
	return c
}

// onWorker reports whether the caller is code running inside Do on the MLX
// thread.
func onWorker() bool {
	if !haveThreadID || batching.Load() == 0 {
		return false
	}
	tid := threadID()
	return tid != 0 && tid == workerTID
}

// do runs fn on the MLX thread and returns when it has finished.
func do(fn func()) {
	if onWorker() {
		fn()
		return
	}
	c := callPool.Get().(*call)
	c.fn = fn
	c.reset()
	trips.Add(1)
	enqueue(c)
	waitDone(c)
	p := c.panicked
	c.fn, c.panicked = nil, nil
	callPool.Put(c)
	if p != nil {
		panic(p)
	}
}

// stuckAfter is how long a call may wait behind a running Do before the
// wait is reported: Do's fn must not wait for goroutines that call this
// package, and when it does the process deadlocks silently.
var stuckAfter = 5 * time.Second

func waitDone(c *call) {
	n := callerSpin.polls()
	start := time.Now()
	for i := 0; i < n; i++ {
		if pollDone(c) {
			callerSpin.done(n)
			return
		}
		if i%yieldEvery == yieldEvery-1 {
			osYield()
			if time.Since(start) > maxSpinTime {
				n = i + 1
				break
			}
		}
	}
	spun := time.Since(start)
	seen := waits.Load()
	for {
		if sleepUntilDone(c, stuckAfter) {
			callerSpin.parked(n, spun, time.Since(start))
			return
		}
		// Reported once, and only when the thread has spent the whole
		// interval in a Do without waiting for MLX at all: a Do that
		// evaluates is working, one that never does is stuck.
		now := waits.Load()
		if batching.Load() > 0 && waiting.Load() == 0 && now == seen {
			logger().Warn("mlx: a call has waited " + stuckAfter.String() + " for the MLX thread, which is running a Do that is not waiting for MLX: " +
				"if that Do's fn waits for this goroutine (or for anything that calls mlx), the process is deadlocked; " +
				"fn must not wait for goroutines that call mlx")
			for !sleepUntilDone(c, time.Hour) {
			}
			return
		}
		seen = now
	}
}

// post queues fn to run on the MLX thread without waiting. Calls run in
// the order they were queued, so anything a later call observes (active
// memory after a Free, say) already reflects fn.
func post(fn func()) {
	if onWorker() {
		fn()
		return
	}
	trips.Add(1)
	c := newCall()
	c.fn, c.posted = fn, true
	enqueue(c)
}

// Do runs fn on the MLX thread: every call fn makes to this package runs
// there directly, without a trip between threads each. Use it for a burst of
// small calls (build a few ops, evaluate, read the result, free), where the
// trips would cost more than the work. Other goroutines' calls wait until fn
// returns, so fn must not wait for goroutines that call this package (a
// call stuck behind a Do for seconds is logged, see SetLogger). A panic in
// fn is raised again on the caller's goroutine with its original value; a
// panic inside any other call of this package reaches the caller as a
// *ThreadPanic, which also carries the MLX thread's stack.
//
// Where the OS thread cannot be identified (not linux or darwin), fn simply
// runs on the caller's goroutine.
func Do(fn func() error) error {
	if !haveThreadID || onWorker() {
		return fn()
	}
	if err := Load(); err != nil {
		return err
	}
	var err error
	var panicked any
	do(func() {
		batching.Add(1)
		defer batching.Add(-1)
		// fn is the caller's own code: its panic goes back as it was
		// raised, as if fn had run on the caller's goroutine.
		defer func() { panicked = recover() }()
		err = fn()
	})
	if panicked != nil {
		panic(panicked)
	}
	return err
}

// doErr runs fn on the MLX thread and returns its error; it loads MLX first.
func doErr(fn func() error) error {
	if err := Load(); err != nil {
		return err
	}
	var err error
	do(func() { err = fn() })
	return err
}

// freeHandle frees the handle of an array that nothing can use any more
// (its freed flag is set). When the MLX thread is between calls with none
// queued, it frees it on the calling thread: freeing an array is safe on
// any thread (MLX drops a reference count and, for the last one, returns
// the buffer under its allocator's lock), and a trip to the MLX thread costs
// more than the free. Otherwise the free is queued behind the calls before
// it, as a call of its own: the running call may have read the handle
// before the flag was set, and frees keep their order with other calls (a
// load's peak memory depends on it).
func freeHandle(h uintptr) {
	if running.Load()&1 == 0 && queueEmpty() || onWorker() {
		mlx_array_free(h)
		return
	}
	post(func() { mlx_array_free(h) })
}

// enqueueFree hands the freeing of h to the MLX thread, waking it.
func enqueueFree(h uintptr) {
	pendingMu.Lock()
	first := len(pendingFrees) == 0
	pendingFrees = append(pendingFrees, h)
	pendingN.Store(int32(len(pendingFrees)))
	pendingMu.Unlock()
	if first {
		// Wake the worker so that memory of collected arrays comes back even
		// when no other call follows soon.
		post(func() {})
	}
}

// drainFrees frees, on the MLX thread, the handles waiting for it.
func drainFrees() {
	if pendingN.Load() == 0 {
		return
	}
	pendingMu.Lock()
	hs := pendingFrees
	pendingFrees = nil
	pendingN.Store(0)
	pendingMu.Unlock()
	for _, h := range hs {
		mlx_array_free(h)
	}
}

var (
	errorCallbackOnce sync.Once
	errorCallbackPtr  uintptr
)

// errorHandlerCallback returns the C function pointer of the handler that
// records MLX's error message for the call in progress. purego callbacks are
// never freed, so there is exactly one.
func errorHandlerCallback() uintptr {
	errorCallbackOnce.Do(func() {
		errorCallbackPtr = purego.NewCallback(func(msg *byte, _ unsafe.Pointer) {
			m := goString(uintptr(unsafe.Pointer(msg)))
			if !haveThreadID {
				lastError = m
				return
			}
			if tid := threadID(); tid == workerTID {
				lastError = m
			} else {
				threadErrMu.Lock()
				threadErrors[tid] = m
				threadErrMu.Unlock()
			}
		})
	})
	return errorCallbackPtr
}

// takeThreadError is takeError for a call made on any thread; the caller
// has its goroutine locked to the thread the failed call ran on.
func takeThreadError() string {
	tid := threadID()
	if tid == workerTID {
		return takeError()
	}
	threadErrMu.Lock()
	m, ok := threadErrors[tid]
	delete(threadErrors, tid)
	threadErrMu.Unlock()
	if !ok || m == "" {
		m = "MLX reported an error without a message"
	}
	return m
}

// takeError returns and clears the message of the last MLX error.
func takeError() string {
	m := lastError
	lastError = ""
	if m == "" {
		m = "MLX reported an error without a message"
	}
	return m
}

var logPtr atomic.Pointer[slog.Logger]

// SetLogger sets where the package reports what it cannot return as an
// error (a call stuck behind a Do, for one); nil restores the default,
// slog.Default().
func SetLogger(l *slog.Logger) { logPtr.Store(l) }

func logger() *slog.Logger {
	if l := logPtr.Load(); l != nil {
		return l
	}
	return slog.Default()
}
