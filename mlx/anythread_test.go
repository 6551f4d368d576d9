package mlx

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Making an array from data and freeing it run on the caller's thread; the
// tests here check that they make no trip, that they stay correct when
// many goroutines do them at once beside calls on the MLX thread, and that
// an MLX error raised on another thread reaches the call that raised it.

func TestMakingAndFreeingAnArrayFromDataNeedNoTrip(t *testing.T) {
	loadOrSkip(t)
	if !haveThreadID {
		t.Skip("the calling thread cannot be told from the MLX thread here")
	}
	before := trips.Load()
	a, err := FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	require.NoError(t, err)
	b, err := NewArrayBytes([]byte{1, 0, 2, 0}, []int{2}, Int16)
	require.NoError(t, err)
	s, err := Scalar(int64(7))
	require.NoError(t, err)
	assert.Equal(t, []int{2, 3}, a.Shape())
	assert.Equal(t, Float32, a.Dtype())
	FreeAll(a, b, s)
	assert.Equal(t, int64(0), trips.Load()-before, "no call went to the MLX thread")

	if sym._mlx_array_new_uninitialized == 0 {
		return // an official libmlxc: NewArrayFill zeroes on the MLX thread
	}
	before = trips.Load()
	f, err := NewArrayFill([]int{3}, Uint8, func(dst []byte) error {
		copy(dst, []byte{7, 8, 9})
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, int64(0), trips.Load()-before, "NewArrayFill made no trip")
	v, err := ToSlice[uint8](f)
	require.NoError(t, err)
	assert.Equal(t, []uint8{7, 8, 9}, v)
	f.Free()
}

func TestAnArrayFromDataHoldsItsDataAndShape(t *testing.T) {
	loadOrSkip(t)
	shape := []int{2, 2}
	a, err := FromSlice([]int32{1, 2, 3, 4}, shape...)
	require.NoError(t, err)
	defer a.Free()
	shape[0] = 9 // the array keeps its own copy of the shape
	assert.Equal(t, []int{2, 2}, a.Shape())
	v, err := ToSlice[int32](a)
	require.NoError(t, err)
	assert.Equal(t, []int32{1, 2, 3, 4}, v)
	info, err := a.Info()
	require.NoError(t, err)
	assert.Equal(t, Info{Shape: []int{2, 2}, Dtype: Int32, Size: 4, Nbytes: 16}, info)
}

// A free made while the MLX thread runs a call waits for that call to end
// (the call may have read the handle before it was freed), and is done
// before the calls queued after it.
func TestAFreeDuringACallWaitsForItToEnd(t *testing.T) {
	loadOrSkip(t)
	const n = 1 << 20
	a, err := NewArrayBytes(make([]byte, n), []int{n}, Uint8)
	require.NoError(t, err)
	with, err := ActiveMemory()
	require.NoError(t, err)
	var during int64
	require.NoError(t, Do(func() error {
		freed := make(chan struct{})
		go func() { a.Free(); close(freed) }()
		<-freed
		// Free has returned on the other goroutine; the handle waits.
		var err error
		during, err = ActiveMemory()
		return err
	}))
	after, err := ActiveMemory()
	require.NoError(t, err)
	assert.Equal(t, with, during, "the array is not freed while the call that was running when Free came is still running")
	assert.Equal(t, with-n, after, "the array is freed as soon as that call ends")
}

func TestAnMLXErrorOnAnotherThreadReachesItsOwnCall(t *testing.T) {
	loadOrSkip(t)
	if !haveThreadID {
		t.Skip("the calling thread cannot be told from the MLX thread here")
	}
	// mlx_dtype_size of an unknown dtype fails on any thread and touches
	// nothing else: errors raised at once on the MLX thread and on other
	// threads must each reach their own caller.
	const goroutines, rounds = 4, 200
	var wg sync.WaitGroup
	errs := make(chan string, goroutines+1)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				dt := int32(100 + g)
				runtime.LockOSThread()
				size := mlx_dtype_size(dt)
				msg := takeThreadError()
				runtime.UnlockOSThread()
				if want := fmt.Sprintf("unknown mlx_dtype %d", dt); size != 0 || msg != want {
					errs <- fmt.Sprintf("goroutine %d: size %d, message %q, want %q", g, size, msg, want)
					return
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < rounds; i++ {
			var msg string
			do(func() {
				mlx_dtype_size(99)
				msg = takeError()
			})
			if msg != "unknown mlx_dtype 99" {
				errs <- fmt.Sprintf("MLX thread: message %q", msg)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	threadErrMu.Lock()
	defer threadErrMu.Unlock()
	assert.Empty(t, threadErrors, "every message was taken by its call")
}

// Many goroutines make, read and free arrays while others build and
// evaluate ops and run bursts in Do: every value is right, and every byte
// comes back.
func TestArraysMadeAndFreedOnManyGoroutinesBesideTheMLXThread(t *testing.T) {
	loadOrSkip(t)
	runtime.GC()
	base, err := ActiveMemory()
	require.NoError(t, err)
	const makers, users, rounds = 4, 2, 300
	var wg sync.WaitGroup
	errs := make(chan error, makers+users+1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for g := 0; g < makers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				v := float32(g*rounds + i)
				a, err := FromSlice([]float32{v, -v, 2 * v})
				if err != nil {
					fail(err)
					return
				}
				if i%3 == 0 {
					got, err := ToSlice[float32](a)
					if err != nil || len(got) != 3 || got[0] != v || got[1] != -v || got[2] != 2*v {
						fail(fmt.Errorf("maker %d: read %v, %v for %v", g, got, err, v))
						a.Free()
						return
					}
				}
				a.Free()
			}
		}(g)
	}
	for g := 0; g < users; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				x, err := FromSlice([]int32{int32(i), int32(g)})
				if err != nil {
					fail(err)
					return
				}
				y, err := Add(x, x)
				x.Free() // freed before the op that uses it is evaluated
				if err != nil {
					fail(err)
					return
				}
				got, err := ToSlice[int32](y)
				y.Free()
				if err != nil || len(got) != 2 || got[0] != int32(2*i) || got[1] != int32(2*g) {
					fail(fmt.Errorf("user %d: %v, %v", g, got, err))
					return
				}
			}
		}(g)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < rounds/10; i++ {
			err := Do(func() error {
				a, err := FromSlice([]float32{1, 2})
				if err != nil {
					return err
				}
				defer a.Free()
				b, err := Multiply(a, a)
				if err != nil {
					return err
				}
				defer b.Free()
				time.Sleep(100 * time.Microsecond) // frees elsewhere wait for this call
				return Eval(b)
			})
			if err != nil {
				fail(err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	after, err := ActiveMemory()
	require.NoError(t, err)
	assert.LessOrEqual(t, after, base, "every array made during the test was freed")
}
