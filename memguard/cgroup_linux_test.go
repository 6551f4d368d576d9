//go:build linux

package memguard

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plainCgroupLimit reads the smallest memory limit set on this process's
// cgroups, or on any cgroup above them, the plain way: split
// /proc/self/cgroup on colons, take the cgroup mounts from the fields of
// /proc/self/mountinfo (cgroup2 at /sys/fs/cgroup when there is no
// mountinfo), and read memory.limit_in_bytes (v1) or memory.max (v2) in
// every directory from the process's cgroup up to the mount point. It
// shares no code with the package. math.MaxInt64 means no limit.
func plainCgroupLimit(t *testing.T, root string) int64 {
	t.Helper()
	cg, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if os.IsNotExist(err) {
		return math.MaxInt64
	}
	require.NoError(t, err)
	type mount struct{ root, point string }
	v1, v2 := []mount{}, []mount{}
	if mi, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo")); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			f := strings.Fields(line)
			sep := -1
			for i, w := range f {
				if w == "-" {
					sep = i
					break
				}
			}
			if sep < 5 || sep+1 >= len(f) {
				continue
			}
			m := mount{f[3], f[4]}
			switch f[sep+1] {
			case "cgroup2":
				v2 = append(v2, m)
			case "cgroup":
				if sep+3 < len(f) && strings.Contains(","+f[sep+3]+",", ",memory,") {
					v1 = append(v1, m)
				}
			}
		}
	} else {
		v2 = append(v2, mount{"/", "/sys/fs/cgroup"})
	}
	limit := int64(math.MaxInt64)
	walk := func(mounts []mount, path, file string) {
		for _, m := range mounts {
			dir := m.point
			if rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.root, "/")); ok && (rel == "" || rel[0] == '/') && !strings.HasPrefix(rel, "/..") {
				dir = m.point + rel
			}
			for {
				if b, err := os.ReadFile(filepath.Join(root, dir, file)); err == nil {
					s := strings.TrimSpace(string(b))
					if s != "max" {
						n, err := strconv.ParseInt(s, 10, 64)
						require.NoError(t, err, "%s in %s", file, dir)
						limit = min(limit, n)
					}
				}
				if dir == m.point || len(dir) <= len(m.point) {
					break
				}
				dir = filepath.Dir(dir)
			}
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(cg)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		require.Len(t, parts, 3, "a /proc/self/cgroup line: %q", line)
		switch {
		case parts[0] == "0" && parts[1] == "":
			walk(v2, parts[2], "memory.max")
		case strings.Contains(","+parts[1]+",", ",memory,"):
			walk(v1, parts[2], "memory.limit_in_bytes")
		}
	}
	return limit
}

func TestPhysicalMemoryIsMemTotalCappedByTheCgroupLimitReadPlainly(t *testing.T) {
	trees := []string{"v1-recorded", "v2-recorded", "v1-limited", "v2-limited", "v2-max", "v2-container", "v2-nomountinfo", "v2-outside-namespace", "old-kernel"}
	for _, tree := range trees {
		t.Run("the "+tree+" tree", func(t *testing.T) {
			root := filepath.Join("testdata", tree)
			want := min(readStatusKB(t, filepath.Join(root, "proc/meminfo"), "MemTotal"), plainCgroupLimit(t, root))
			got, err := linuxPhysical(root)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}
}
