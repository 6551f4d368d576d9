//go:build linux || darwin

package mlx_test

import (
	"syscall"
	"testing"
)

// contextSwitches returns the process's context switches so far, voluntary
// (a thread went to sleep) and involuntary (it was preempted). Voluntary
// switches per call count the sleeps and wake-ups a hand-off between
// threads costs, a figure that other load on the machine hardly changes.
func contextSwitches() (vol, invol int64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return int64(ru.Nvcsw), int64(ru.Nivcsw)
}

// reportSwitches reports the voluntary context switches per op since vol0.
func reportSwitches(b *testing.B, vol0 int64) {
	vol, _ := contextSwitches()
	b.ReportMetric(float64(vol-vol0)/float64(b.N), "vcsw/op")
}
