//go:build linux

package memguard

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestLinuxMemoryFromRecordedAndWrittenTrees(t *testing.T) {
	const kB = 1024
	tests := []struct {
		name      string
		dir       string
		physical  int64
		available int64
	}{
		{"a recorded cgroup v1 machine without a limit reports its MemTotal and MemAvailable",
			"v1-recorded", 24683652 * kB, 24237096 * kB},
		{"a recorded cgroup v2 machine whose parent limit lies above MemTotal reports its MemTotal and MemAvailable",
			"v2-recorded", 131961868 * kB, 131496824 * kB},
		{"a v1 pod limit lowers physical memory and a fuller parent bounds what is available",
			"v1-limited", 8 << 30, 34359738368 - 32212254720},
		{"a v2 service limit lowers physical memory to memory.max and available to max minus current",
			"v2-limited", 16 << 30, (16 << 30) - (4 << 30)},
		{"memory.max of max at every level leaves MemTotal and MemAvailable alone",
			"v2-max", 32658412 * kB, 30000000 * kB},
		{"a container whose mount root is its own cgroup reads the limit at the mount point",
			"v2-container", 4_000_000_000, 100_000_000},
		{"without mountinfo the usual cgroup2 mount point is read",
			"v2-nomountinfo", 2_000_000_000, 1_500_000_000},
		{"a cgroup outside the namespace is read at the mount point and never above it",
			"v2-outside-namespace", 3_000_000_000, 2_000_000_000},
		{"a kernel without MemAvailable or cgroups estimates free plus buffers plus cache",
			"old-kernel", 8062292 * kB, (3003664 + 201228 + 2450124) * kB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join("testdata", tt.dir)
			physical, err := linuxPhysical(root)
			require.NoError(t, err)
			assert.Equal(t, tt.physical, physical, "physical")
			available, err := linuxAvailable(root)
			require.NoError(t, err)
			assert.Equal(t, tt.available, available, "available")
		})
	}
}

func TestLinuxMalformedFilesAreFormatErrors(t *testing.T) {
	for name, dir := range map[string]string{
		"a memory.max that is not a number": "bad-memory-max",
		"a MemTotal that is not a number":   "bad-meminfo",
		"a meminfo without MemTotal":        "no-memtotal",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := linuxPhysical(filepath.Join("testdata", dir))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrFormat)
			assert.Contains(t, err.Error(), dir, "the error names the file")
		})
	}
}

func TestLinuxProcStatusFromRecordedFile(t *testing.T) {
	s, err := linuxProcStatus(filepath.Join("testdata", "v1-recorded"))
	require.NoError(t, err)
	assert.Equal(t, procStatus{rss: 1692 * 1024, hwm: 1692 * 1024}, s)

	_, err = parseProcStatus(strings.NewReader("Name:\tx\nVmRSS:\t12 kB\n"))
	assert.ErrorIs(t, err, ErrFormat, "a status without VmHWM")
	_, err = parseProcStatus(strings.NewReader("VmHWM:\t12 MB\nVmRSS:\t12 kB\n"))
	assert.ErrorIs(t, err, ErrFormat, "a size in another unit")
}

func TestMountinfoPathsAreUnescapedAndNonCgroupMountsSkipped(t *testing.T) {
	in := `1 0 0:1 / / rw - ext4 /dev/vda rw
2 1 0:2 / /sys/fs/cgroup/my\040mem rw shared:1 - cgroup cgroup rw,memory
3 1 0:3 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
4 1 0:4 /a /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
`
	mounts, err := parseMountinfo(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, []cgroupMount{
		{root: "/", point: "/sys/fs/cgroup/my mem", memory: true},
		{root: "/a", point: "/sys/fs/cgroup/unified", v2: true},
	}, mounts)

	_, err = parseMountinfo(strings.NewReader("1 0 0:1 / /\n"))
	assert.ErrorIs(t, err, ErrFormat)
}

// readStatusKB reads one "<key>: <n> kB" field from a /proc file without
// going through the package's parsers.
func readStatusKB(t *testing.T, path, key string) int64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 3 && fields[0] == key+":" && fields[2] == "kB" {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			require.NoError(t, err)
			return n * 1024
		}
	}
	t.Fatalf("%s has no %s", path, key)
	return 0
}

func TestPhysicalMemoryAgreesWithThisMachine(t *testing.T) {
	total := readStatusKB(t, "/proc/meminfo", "MemTotal")
	want := min(total, plainCgroupLimit(t, "/"))

	got, err := PhysicalMemory()
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.LessOrEqual(t, got, total, "a cgroup can only lower physical memory")
}

func TestAvailableMemoryAgreesWithThisMachine(t *testing.T) {
	// Other processes allocate and free between the reads, so the answer
	// is bracketed by readings taken before and after it, with some slack.
	const slack = 512 << 20
	before := readStatusKB(t, "/proc/meminfo", "MemAvailable")
	got, err := AvailableMemory()
	require.NoError(t, err)
	after := readStatusKB(t, "/proc/meminfo", "MemAvailable")

	assert.LessOrEqual(t, got, max(before, after)+slack, "never more than MemAvailable")
	budget, err := readCgroupBudget("/")
	require.NoError(t, err)
	if !budget.limited || budget.room >= min(before, after) {
		assert.GreaterOrEqual(t, got+slack, min(before, after), "MemAvailable when no cgroup is tighter")
	}
}

func TestResidentMemoryAgreesWithProcSelfStatus(t *testing.T) {
	const slack = 16 << 20
	before := readStatusKB(t, "/proc/self/status", "VmRSS")
	rss, err := ResidentMemory()
	require.NoError(t, err)
	after := readStatusKB(t, "/proc/self/status", "VmRSS")
	assert.GreaterOrEqual(t, rss+slack, min(before, after))
	assert.LessOrEqual(t, rss, max(before, after)+slack)

	hwmBefore := readStatusKB(t, "/proc/self/status", "VmHWM")
	hwm, err := PeakResidentMemory()
	require.NoError(t, err)
	hwmAfter := readStatusKB(t, "/proc/self/status", "VmHWM")
	assert.GreaterOrEqual(t, hwm, hwmBefore, "the peak never falls")
	assert.LessOrEqual(t, hwm, hwmAfter, "the peak never falls")
	assert.GreaterOrEqual(t, hwm, rss-min(rss, slack))

	viaSource, err := ProcessRSS()
	require.NoError(t, err)
	assert.InDelta(t, float64(rss), float64(viaSource), slack, "ProcessRSS is the current RSS on Linux")
}

// TestGuardTripsOnARealGrowingAllocation feeds a guard the real resident
// size of this process while the test maps and touches memory step by
// step. The memory comes from mmap, not the Go heap, so neither the garbage
// collector nor the race detector's shadow memory blurs the steps.
func TestGuardTripsOnARealGrowingAllocation(t *testing.T) {
	const (
		step     = 32 << 20
		margin   = 256 << 20
		headroom = 1 << 30
		maxSteps = 3 * margin / step
	)
	page := os.Getpagesize()
	start, err := ProcessRSS()
	require.NoError(t, err)
	g, err := New(WithPhysical(start+margin+headroom), WithHeadroom(headroom), WithUsed("resident", ProcessRSS))
	require.NoError(t, err)
	require.Equal(t, start+margin, g.Limit())

	var lastOK int64
	var trip *ExceededError
	steps := 0
	for steps < maxSteps {
		mem, err := unix.Mmap(-1, 0, step, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		require.NoError(t, err)
		t.Cleanup(func() { _ = unix.Munmap(mem) })
		for i := 0; i < len(mem); i += page {
			mem[i] = 1
		}
		steps++
		err = g.Check("after step " + strconv.Itoa(steps))
		if err == nil {
			lastOK, _ = ProcessRSS()
			continue
		}
		require.ErrorAs(t, err, &trip)
		break
	}
	require.NotNil(t, trip, "the guard never tripped in %d steps of %d MB", maxSteps, step>>20)
	t.Logf("start %d MB, limit %d MB, tripped after %d steps at %d MB", start>>20, g.Limit()>>20, steps, trip.Used>>20)

	assert.Greater(t, trip.Used, g.Limit(), "a trip means used is past the limit")
	assert.LessOrEqual(t, trip.Used, g.Limit()+step, "the guard trips within one step of the limit")
	assert.Greater(t, trip.Used, g.Limit()-2*step, "the guard does not trip early")
	assert.LessOrEqual(t, lastOK, g.Limit()+slackFor(page), "every passing check was within the limit")
	assert.GreaterOrEqual(t, steps, margin/step-1, "the guard let the allocation grow up to the limit")
	assert.Equal(t, "after step "+strconv.Itoa(steps), trip.Label)
}

// slackFor allows for the few pages the process itself touches between the
// guard's reading and the test's.
func slackFor(page int) int64 { return int64(64 * page) }
