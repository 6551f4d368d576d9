package mlx

import (
	"bytes"
	"errors"
	"log/slog"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

func loadOrSkip(t *testing.T) {
	t.Helper()
	if err := Load(); err != nil {
		testenv.Unavailable(t, "MLX is not loadable: %v", err)
	}
}

func TestDoIsOneTripAndOtherGoroutinesWaitUntilItReturns(t *testing.T) {
	loadOrSkip(t)
	before := trips.Load()
	require.NoError(t, Do(func() error {
		for i := 0; i < 50; i++ {
			a, err := Scalar(float32(i))
			if err != nil {
				return err
			}
			b, err := Add(a, a)
			if err != nil {
				return err
			}
			if err := Eval(b); err != nil {
				return err
			}
			FreeAll(a, b)
		}
		return nil
	}))
	assert.Equal(t, int64(1), trips.Load()-before, "150 calls inside one Do are one trip to the MLX thread")

	one, err := Scalar(int32(1))
	require.NoError(t, err)
	defer one.Free()
	var otherDone atomic.Bool
	var sawOtherFinish bool
	require.NoError(t, Do(func() error {
		queued := trips.Load()
		go func() {
			// An op needs the MLX thread (making an array from data
			// does not: it would run at once).
			a, err := Negative(one)
			if err == nil {
				a.Free()
			}
			otherDone.Store(true)
		}()
		// Wait until the other goroutine's call is queued, then give it
		// ample time to run: it must not, while this Do holds the thread.
		for trips.Load() == queued {
			runtime.Gosched()
		}
		deadline := time.Now().Add(200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if otherDone.Load() {
				sawOtherFinish = true
				break
			}
			runtime.Gosched()
		}
		return nil
	}))
	assert.False(t, sawOtherFinish, "another goroutine's call ran while Do's fn was running")
	for !otherDone.Load() {
		runtime.Gosched()
	}
}

// queueBehindDo runs hold inside a Do once another goroutine's call is
// queued behind it, with stuck calls reported after 20 ms, and returns
// what was logged.
func queueBehindDo(t *testing.T, hold func(log *syncBuffer)) string {
	t.Helper()
	loadOrSkip(t)
	var buf syncBuffer
	SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	defer SetLogger(nil)
	old := stuckAfter
	stuckAfter = 20 * time.Millisecond
	defer func() { stuckAfter = old }()

	var wg sync.WaitGroup
	require.NoError(t, Do(func() error {
		queued := trips.Load()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = ActiveMemory()
		}()
		for trips.Load() == queued {
			runtime.Gosched()
		}
		hold(&buf)
		return nil
	}))
	wg.Wait()
	return buf.String()
}

func TestACallQueuedBehindALongDoIsLogged(t *testing.T) {
	logged := queueBehindDo(t, func(log *syncBuffer) {
		// Hold the MLX thread well past stuckAfter, as a Do that waits
		// for the wrong thing would.
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) && !strings.Contains(log.String(), "deadlocked") {
			time.Sleep(5 * time.Millisecond)
		}
	})
	assert.Contains(t, logged, "must not wait for goroutines that call mlx")
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAPanicOnTheMLXThreadReachesTheCallerWithBothStacks(t *testing.T) {
	loadOrSkip(t)
	var got any
	var callerStack string
	func() {
		defer func() {
			got = recover()
			callerStack = string(debug.Stack())
		}()
		do(func() {
			var m map[string]int
			m["x"] = 1 // a runtime error on the MLX thread
		})
	}()
	tp, ok := got.(*ThreadPanic)
	require.True(t, ok, "want a *ThreadPanic, got %T %v", got, got)
	var re runtime.Error
	assert.True(t, errors.As(tp, &re), "the runtime error is still found with errors.As")
	assert.Contains(t, callerStack, "TestAPanicOnTheMLXThreadReachesTheCallerWithBothStacks", "raised on the caller's goroutine")
	assert.Contains(t, string(tp.Stack), "mlx.run", "the MLX thread's stack comes along")
	// The thread lives on.
	_, err := Version()
	assert.NoError(t, err)
}

func TestANilStreamIsTheDefaultStream(t *testing.T) {
	loadOrSkip(t)
	require.NoError(t, Synchronize(nil))
	x, err := FromSlice([]float32{1, 2})
	require.NoError(t, err)
	defer x.Free()
	g, err := DistributedInit(false, "")
	require.NoError(t, err)
	defer g.Free()
	s, err := AllSum(x, g, nil)
	require.NoError(t, err)
	defer s.Free()
	v, err := ToSlice[float32](s)
	require.NoError(t, err)
	assert.Equal(t, []float32{1, 2}, v)
	d, err := (*Stream)(nil).Device()
	require.NoError(t, err)
	def, err := DefaultDevice()
	require.NoError(t, err)
	assert.Equal(t, def, d)
}

func TestShapeAndDtypeNeedNoTripAndSurviveFree(t *testing.T) {
	loadOrSkip(t)
	a, err := Zeros([]int{2, 3, 5}, Float16)
	require.NoError(t, err)
	before := trips.Load()
	assert.Equal(t, []int{2, 3, 5}, a.Shape())
	assert.Equal(t, Float16, a.Dtype())
	assert.Equal(t, 30, a.Size())
	assert.Equal(t, 60, a.Nbytes())
	assert.Equal(t, int64(0), trips.Load()-before)
	a.Free()
	assert.Equal(t, Float16, a.Dtype(), "a freed array keeps its dtype, not Bool")
	_, err = a.Info()
	assert.ErrorIs(t, err, ErrFreed)
}

func TestEveryDeclaredSymbolIsInTheBuiltLibrary(t *testing.T) {
	loadOrSkip(t)
	if !strings.Contains(lib.path, "build") {
		t.Skipf("loaded %s, not this repository's C ABI library", lib.path)
	}
	v := reflect.ValueOf(sym)
	for i := 0; i < v.NumField(); i++ {
		assert.NotZerof(t, v.Field(i).Uint(), "%s is declared in capi/mlxc.h but not exported by %s", v.Type().Field(i).Name, lib.path)
	}
	assert.Equal(t, ABIMain, lib.abi)
}

func TestACallQueuedBehindADoThatWaitsForMLXIsNotLogged(t *testing.T) {
	logged := queueBehindDo(t, func(*syncBuffer) {
		// Ten intervals inside one call that waits for MLX (an
		// evaluation, a synchronize): the queued call waits for MLX, as
		// it should, and nothing is reported.
		done := waitingFor()
		time.Sleep(10 * stuckAfter)
		done()
	})
	assert.NotContains(t, logged, "deadlocked", "a Do busy in MLX is no deadlock: %s", logged)
}

func TestTheSpinBudgetRecoversForWaitsASpinWouldCover(t *testing.T) {
	var b spinBudget
	// Slow waits halve the budget down to its floor.
	for range 20 {
		b.parked(b.polls(), time.Duration(b.polls())*50*time.Nanosecond, 10*time.Millisecond)
	}
	require.Equal(t, minSpin, b.polls())
	// A wait of 70 µs at 50 ns a poll: a spin of 1400 polls would have
	// caught it, so the next spin is twice that.
	b.parked(minSpin, minSpin*50*time.Nanosecond, 70*time.Microsecond)
	assert.Equal(t, 2800, b.polls())
	// Caught while spinning: doubled, up to the ceiling.
	b.done(b.polls())
	assert.Equal(t, maxSpin, b.polls())
	b.done(b.polls())
	assert.Equal(t, maxSpin, b.polls())
	// A wait just past a full spin: doubled, not over the ceiling.
	b.n.Store(3000)
	b.parked(3000, 3000*50*time.Nanosecond, 151*time.Microsecond)
	assert.Equal(t, maxSpin, b.polls())
	// Longer than any spin: halved.
	b.parked(maxSpin, maxSpin*50*time.Nanosecond, time.Millisecond)
	assert.Equal(t, maxSpin/2, b.polls())
}
