package loader

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkDirect compares the read modes of the Direct strategy on a
// 150 MB checkpoint (warm page cache), rank 0 of 1 and of 2, with the
// default workers, in wall time and in CPU time (user + system, every
// thread) per byte. Its figures chose the default (see ReadMode).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkDirect(b *testing.B) {
	requireMLX(b)
	dir := llamaLike(9, 1024, 4096, 4, 8192).write(b, 3)
	for _, n := range []int{1, 2} {
		for _, mode := range []ReadMode{ReadAuto, ReadPread, ReadMmap, ReadMap} {
			b.Run(fmt.Sprintf("%s/ranks=%d", mode, n), func(b *testing.B) {
				o := bigGuard(b)
				o.WorldSize, o.Read, o.Rules = n, mode, LlamaRules(8, 4)
				l, err := Open(dir, o)
				require.NoError(b, err)
				defer l.Close()
				b.SetBytes(l.Plan().Read)
				cpu0 := processCPU(b)
				for b.Loop() {
					all, err := l.LoadAll(context.Background())
					require.NoError(b, err)
					for _, a := range all {
						a.Free()
					}
				}
				// CPU time per byte is steadier than wall time on a shared
				// machine: it counts the work, not the wait for a core.
				b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N)/float64(l.Plan().Read), "cpu-ns/B")
			})
		}
	}
}
