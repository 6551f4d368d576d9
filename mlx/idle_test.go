//go:build linux || darwin

package mlx

import (
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Both sides of a trip spin a little before they sleep; an idle process
// must not keep spinning. After a burst of calls (which grows the spin
// budgets to their most), a second of idleness costs next to no CPU.
func TestAnIdleProcessSpinsNoCore(t *testing.T) {
	loadOrSkip(t)
	for i := 0; i < 2000; i++ {
		_, err := ActiveMemory()
		require.NoError(t, err)
	}
	time.Sleep(50 * time.Millisecond) // let the last spins run out
	before := cpuTime(t)
	time.Sleep(time.Second)
	used := cpuTime(t) - before
	t.Logf("CPU time over 1 s idle: %v", used)
	assert.Less(t, used, 50*time.Millisecond, "an idle process spins")
}

// Calls spaced so that the MLX thread keeps falling asleep between them,
// from several goroutines at once: none is lost (a lost wake-up hangs).
func TestCallsSpacedAroundTheMLXThreadsSleepAreNeverLost(t *testing.T) {
	loadOrSkip(t)
	const goroutines, calls = 4, 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				if _, err := ActiveMemory(); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("calls hung: a wake-up of the MLX thread or of a caller was lost")
	}
}
