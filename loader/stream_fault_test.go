package loader

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/safetensors"
)

// leftAllocated returns, per rank, the MLX memory a rank whose load failed
// reported still active (see streamLeftMarker).
func leftAllocated(t *testing.T, out string) map[int]int64 {
	t.Helper()
	left := map[int]int64{}
	re := regexp.MustCompile(`\[(\d+)\] .*` + streamLeftMarker + `(-?\d+)`)
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		r, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		left[r], err = strconv.ParseInt(m[2], 10, 64)
		require.NoError(t, err)
	}
	return left
}

// ballastStreamCkpt is streamCkpt with a tensor every rank keeps whole in
// each layer: what a source sends a receiver after its first layers then
// exceeds what the kernel's socket buffers can take in (a sender's and a
// receiver's, which Linux grows up to tcp_wmem's and tcp_rmem's maximum),
// so the source cannot finish while the receiver is not reading.
func ballastStreamCkpt() *ckpt {
	c := streamCkpt()
	// Three layers after the first must outweigh both buffers.
	rows := int((socketBuffers()*2/3 + 4095) / 4096)
	for l := range 4 {
		c.add("model.layers."+itoa(l)+".ballast.weight", safetensors.BF16, 2048, int64(rows))
	}
	return c
}

// socketBuffers is the most a TCP connection's two ends may buffer: the
// maxima of tcp_wmem and tcp_rmem where Linux says, else 8 MiB.
func socketBuffers() int64 {
	most := func(path string) int64 {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0
		}
		f := strings.Fields(string(b))
		if len(f) != 3 {
			return 0
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	n := most("/proc/sys/net/ipv4/tcp_wmem") + most("/proc/sys/net/ipv4/tcp_rmem")
	return min(max(n, 8<<20), 256<<20)
}

func TestAReceiverThatDiesOrStallsEndsItsSourceWithTheRankAndSection(t *testing.T) {
	tests := []struct {
		name, fault string
		grace       time.Duration
		// within bounds the job: the source must end on its own.
		within time.Duration
		// want is the source's error after its section and peer.
		want string
		// reportLeft are the ranks whose load ends in an error of its own.
		reportLeft []int
	}{
		{"a receiver killed mid-stream", "kill:1:1", 40 * time.Second, 30 * time.Second,
			`sending to rank 1: .*connection to a peer was lost`, []int{0, 2}},
		{"a receiver that stops answering mid-stream", "stop:1:1", 3 * time.Second, 15 * time.Second,
			`sending to rank 1: loader: a streamed transfer stalled: nothing came through for 3.6s`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newStreamJobOf(t, ballastStreamCkpt(), 0)
			out, figs, elapsed, err := j.runGrace(t, 3, tt.grace, "LOADER_STREAM_WINDOW=4096", "LOADER_STREAM_FAULT="+tt.fault,
				"LOADER_STREAM_TIMEOUT=4s")
			var re *cluster.RankError
			require.ErrorAs(t, err, &re, out)
			assert.NotZero(t, re.ExitCode, out)
			assert.Empty(t, figs, "a rank finished its load:\n%s", out)
			assert.Contains(t, out, "[1] "+strings.Split(tt.fault, ":")[0]+" after section ")
			assert.Less(t, elapsed, tt.within, out)
			assert.Regexp(t, `\[0\] .*loader: section (layers\.\d|before|after): `+tt.want, out)
			// Rank 2 loses its source once the source has given up.
			assert.Regexp(t, `\[2\] .*loader: section (layers\.\d|before|after): receiving from rank 0: `, out)
			t.Logf("ended in %v", elapsed.Round(time.Millisecond))
			// A rank that ends with an error of its own has freed what its
			// load had allocated; one whose watchdog fired exits at once.
			left := leftAllocated(t, out)
			for _, r := range tt.reportLeft {
				assert.Contains(t, left, r, "rank %d reported no memory figure:\n%s", r, out)
			}
			for r, b := range left {
				assert.Zero(t, b, "rank %d left MLX memory allocated after its failed load", r)
			}
		})
	}
}

func TestACorruptedPartEndsTheReceiverWithTheTensorSectionAndRank(t *testing.T) {
	const tensor = "model.layers.1.self_attn.qkv_proj.weight"
	j := newStreamJob(t, 0)
	out, figs, _, err := j.run(t, 2, "LOADER_STREAM_CORRUPT="+tensor)
	var re *cluster.RankError
	require.ErrorAs(t, err, &re, out)
	assert.NotZero(t, re.ExitCode, out)
	assert.NotContains(t, figs, 1, "the receiver finished its load:\n%s", out)
	assert.Regexp(t, `\[1\] FAIL: loader: section layers\.1: receiving from rank 0: `+
		`loader: a streamed part does not match its source's checksum: tensor "`+regexp.QuoteMeta(tensor)+`": CRC-32C [0-9a-f]{8}, source sent [0-9a-f]{8}`, out)
	left := leftAllocated(t, out)
	require.Contains(t, left, 1, "the receiver reported no memory figure:\n%s", out)
	assert.Zero(t, left[1], "the receiver left MLX memory allocated after its failed load")
}
