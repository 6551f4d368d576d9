//go:build linux

package memguard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Every Linux reader takes the root of the file system it reads /proc and
// /sys under, so that tests can point it at recorded trees in testdata.
const linuxRoot = "/"

func physicalMemory() (int64, error)     { return linuxPhysical(linuxRoot) }
func availableMemory() (int64, error)    { return linuxAvailable(linuxRoot) }
func residentMemory() (int64, error)     { s, err := linuxProcStatus(linuxRoot); return s.rss, err }
func peakResidentMemory() (int64, error) { s, err := linuxProcStatus(linuxRoot); return s.hwm, err }

func linuxPhysical(root string) (int64, error) {
	mi, err := readMeminfo(root)
	if err != nil {
		return 0, err
	}
	b, err := readCgroupBudget(root)
	if err != nil {
		return 0, err
	}
	if b.limited && b.limit < mi.total {
		return b.limit, nil
	}
	return mi.total, nil
}

func linuxAvailable(root string) (int64, error) {
	mi, err := readMeminfo(root)
	if err != nil {
		return 0, err
	}
	b, err := readCgroupBudget(root)
	if err != nil {
		return 0, err
	}
	avail := mi.available
	if b.limited && b.room < avail {
		avail = b.room
	}
	return avail, nil
}

type meminfo struct{ total, available int64 }

func readMeminfo(root string) (meminfo, error) {
	return readProcFile(root, "proc/meminfo", parseMeminfo)
}

// readProcFile opens root/rel and parses it, naming the file in any error.
func readProcFile[T any](root, rel string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	path := filepath.Join(root, rel)
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("memguard: %w", err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("memguard: %s: %w", path, err)
	}
	return v, nil
}

// parseMeminfo reads the fields of /proc/meminfo that memguard needs. Kernels
// before 3.14 have no MemAvailable; for them the estimate is the one the
// kernel's own commit used to describe: free memory plus buffers and page
// cache.
func parseMeminfo(r io.Reader) (meminfo, error) {
	var mi meminfo
	var free, buffers, cached int64
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "MemTotal":
			dst = &mi.total
		case "MemAvailable":
			dst = &mi.available
		case "MemFree":
			dst = &free
		case "Buffers":
			dst = &buffers
		case "Cached":
			dst = &cached
		default:
			continue
		}
		n, err := parseKB(val)
		if err != nil {
			return meminfo{}, fmt.Errorf("%s: %w", key, err)
		}
		*dst = n
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		return meminfo{}, err
	}
	if !seen["MemTotal"] || mi.total == 0 {
		return meminfo{}, fmt.Errorf("no MemTotal: %w", ErrFormat)
	}
	if !seen["MemAvailable"] {
		mi.available = min(free+buffers+cached, mi.total)
	}
	return mi, nil
}

// parseKB reads a "<n> kB" value; the kernel's "kB" means 1024 bytes.
func parseKB(s string) (int64, error) {
	f := strings.Fields(s)
	if len(f) != 2 || f[1] != "kB" {
		return 0, fmt.Errorf("%q is not a size in kB: %w", strings.TrimSpace(s), ErrFormat)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/1024 {
		return 0, fmt.Errorf("%q is not a size in kB: %w", strings.TrimSpace(s), ErrFormat)
	}
	return n * 1024, nil
}

type procStatus struct{ rss, hwm int64 }

func linuxProcStatus(root string) (procStatus, error) {
	return readProcFile(root, "proc/self/status", parseProcStatus)
}

func parseProcStatus(r io.Reader) (procStatus, error) {
	var s procStatus
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		n, err := parseKB(val)
		if err != nil {
			return procStatus{}, fmt.Errorf("%s: %w", key, err)
		}
		if key == "VmRSS" {
			s.rss, haveRSS = n, true
		} else {
			s.hwm, haveHWM = n, true
		}
	}
	if err := sc.Err(); err != nil {
		return procStatus{}, err
	}
	if !haveRSS || !haveHWM {
		return procStatus{}, fmt.Errorf("no VmRSS or VmHWM: %w", ErrFormat)
	}
	return s, nil
}

// cgroupBudget is what the memory cgroups around this process allow: the
// tightest limit on the way from its cgroup up to the hierarchy's root, and
// the least room left under any of those limits. A parent's limit binds its
// children, so every level counts, not just the process's own. (cgroup v1
// could once turn that off with memory.use_hierarchy=0; counting the parents
// anyway errs on the safe side.)
type cgroupBudget struct {
	limited bool
	limit   int64
	room    int64
}

func (b *cgroupBudget) add(limit, usage int64) {
	room := int64(0)
	if usage < limit {
		room = limit - usage
	}
	if !b.limited {
		*b = cgroupBudget{limited: true, limit: limit, room: room}
		return
	}
	b.limit = min(b.limit, limit)
	b.room = min(b.room, room)
}

// cgroupEntry is one line of /proc/self/cgroup: "hierarchy:controllers:path".
// The cgroup v2 line has hierarchy 0 and no controllers.
type cgroupEntry struct {
	hierarchy   string
	controllers []string
	path        string
}

func parseProcCgroup(r io.Reader) ([]cgroupEntry, error) {
	var out []cgroupEntry
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.HasPrefix(parts[2], "/") {
			return nil, fmt.Errorf("line %q: %w", line, ErrFormat)
		}
		e := cgroupEntry{hierarchy: parts[0], path: parts[2]}
		if parts[1] != "" {
			e.controllers = strings.Split(parts[1], ",")
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func (e cgroupEntry) isV2() bool { return e.hierarchy == "0" && len(e.controllers) == 0 }

// cgroupMount is a cgroup file system from /proc/self/mountinfo: root is the
// cgroup that appears at point, which differs from "/" inside containers.
type cgroupMount struct {
	root, point string
	v2          bool
	memory      bool
}

// parseMountinfo keeps the cgroup mounts of /proc/self/mountinfo, whose
// lines read "id parent dev root point options [optional...] - type source
// superoptions".
func parseMountinfo(r io.Reader) ([]cgroupMount, error) {
	var out []cgroupMount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 5 || len(f) < sep+4 {
			return nil, fmt.Errorf("line %q: %w", sc.Text(), ErrFormat)
		}
		m := cgroupMount{root: unescapeMount(f[3]), point: unescapeMount(f[4])}
		switch f[sep+1] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			m.memory = slices.Contains(strings.Split(f[sep+3], ","), "memory")
			if !m.memory {
				continue
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) the kernel
// writes into mount paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// The usual places when /proc/self/mountinfo cannot be read.
var defaultCgroupMounts = []cgroupMount{
	{root: "/", point: "/sys/fs/cgroup", v2: true},
	{root: "/", point: "/sys/fs/cgroup/memory", memory: true},
}

// readCgroupBudget walks every memory cgroup hierarchy the process belongs
// to. A system without cgroups (or without /proc/self/cgroup) has no budget
// and no error; a limit file with content memguard cannot read is an error,
// because guessing "no limit" there is how a container gets OOM-killed.
func readCgroupBudget(root string) (cgroupBudget, error) {
	var b cgroupBudget
	cgPath := filepath.Join(root, "proc/self/cgroup")
	f, err := os.Open(cgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("memguard: %w", err)
	}
	entries, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return b, fmt.Errorf("memguard: %s: %w", cgPath, err)
	}

	mounts := defaultCgroupMounts
	miPath := filepath.Join(root, "proc/self/mountinfo")
	if f, err := os.Open(miPath); err == nil {
		mounts, err = parseMountinfo(f)
		f.Close()
		if err != nil {
			return b, fmt.Errorf("memguard: %s: %w", miPath, err)
		}
	}

	for _, e := range entries {
		v2 := e.isV2()
		if !v2 && !slices.Contains(e.controllers, "memory") {
			continue
		}
		for _, m := range mounts {
			if m.v2 != v2 {
				continue
			}
			limitFile, usageFile := "memory.limit_in_bytes", "memory.usage_in_bytes"
			if v2 {
				limitFile, usageFile = "memory.max", "memory.current"
			}
			if err := walkCgroup(root, m, e.path, limitFile, usageFile, &b); err != nil {
				return b, err
			}
		}
	}
	return b, nil
}

// walkCgroup adds the limits from the process's cgroup directory up to the
// mount point of its hierarchy.
func walkCgroup(root string, m cgroupMount, cgroup, limitFile, usageFile string, b *cgroupBudget) error {
	top := filepath.Join(root, m.point)
	rel, ok := strings.CutPrefix(cgroup, m.root)
	if m.root == "/" {
		rel, ok = cgroup, true
	}
	if ok && rel != "" && !strings.HasPrefix(rel, "/") {
		ok = false // "/a" is not under a mount of "/ab"
	}
	dir := top
	if ok {
		dir = filepath.Join(top, rel)
	}
	// A cgroup outside this cgroup namespace shows as "/../x", and a path
	// from another namespace may not exist in this mount; the mount's own
	// directory is then the closest view of the limit.
	if _, err := os.Stat(dir); err != nil || !strings.HasPrefix(dir, top+string(filepath.Separator)) {
		dir = top
	}
	for {
		limit, limited, err := readCgroupValue(filepath.Join(dir, limitFile))
		if err != nil {
			return err
		}
		if limited {
			usage, _, err := readCgroupValue(filepath.Join(dir, usageFile))
			if err != nil {
				return err
			}
			b.add(limit, usage)
		}
		if dir == top || !strings.HasPrefix(dir, top) {
			return nil
		}
		dir = filepath.Dir(dir)
	}
}

// readCgroupValue reads a byte count from a cgroup file. A missing file (the
// root cgroup has no memory.max) and "max" both mean no limit.
func readCgroupValue(path string) (n int64, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("memguard: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, false, nil
	}
	n, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("memguard: %s: %q is not a byte count: %w", path, s, ErrFormat)
	}
	return n, true, nil
}
