package loader

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

// BenchmarkStreamedLoad streams the same 128 MB from rank 0 to rank 1 over
// ring, cut into few large parts or many small ones: the difference per
// part is what each part costs beyond its bytes (the hand-offs between Go,
// the MLX thread, the stream and socket threads on both ranks). It reports
// the receiver's median load time per run and that time per part.
//
//	go test -run '^$' -bench StreamedLoad -benchtime 5x ./loader/
func BenchmarkStreamedLoad(b *testing.B) {
	const total = 128 << 20
	for _, parts := range []int{32, 2048} {
		b.Run(strconv.Itoa(parts)+" parts", func(b *testing.B) {
			c := newCkpt(5)
			per := parts / 4
			for l := range 4 {
				for k := range per {
					// Names no rule matches: every rank keeps them whole.
					c.add("model.layers."+itoa(l)+".blob."+itoa(k)+".weight", safetensors.BF16, int64(total/parts/2))
				}
			}
			j := newStreamJobOf(b, c, 0)
			var times []time.Duration
			b.ResetTimer()
			for range b.N {
				out, _, _, err := j.runGrace(b, 2, 10*time.Second, "LOADER_STREAM_BENCH=1")
				require.NoError(b, err, out)
				for _, line := range strings.Split(out, "\n") {
					if !strings.HasPrefix(line, "[1] ") {
						continue
					}
					if _, ns, ok := strings.Cut(line, streamTimeMarker); ok {
						v, err := strconv.ParseInt(strings.TrimSpace(ns), 10, 64)
						require.NoError(b, err, line)
						times = append(times, time.Duration(v))
					}
				}
			}
			require.Len(b, times, b.N, "the receiver printed no load time")
			slices.Sort(times)
			med := times[len(times)/2]
			b.ReportMetric(med.Seconds(), "s/load")
			b.ReportMetric(float64(med.Microseconds())/float64(parts), "µs/part")
		})
	}
}
