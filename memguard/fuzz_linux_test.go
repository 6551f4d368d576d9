//go:build linux

package memguard

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProcParsers feeds arbitrary text to the /proc and cgroup parsers,
// seeded with every file under testdata. They must fail with an error, never
// panic, and what they accept must be self-consistent.
func FuzzProcParsers(f *testing.F) {
	_ = filepath.WalkDir("testdata", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) != ".md" {
			if b, err := os.ReadFile(path); err == nil {
				f.Add(b)
			}
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		if mi, err := parseMeminfo(bytes.NewReader(data)); err == nil && mi.total == 0 {
			t.Errorf("meminfo accepted without a MemTotal: %q", data)
		}
		_, _ = parseProcStatus(bytes.NewReader(data))
		if entries, err := parseProcCgroup(bytes.NewReader(data)); err == nil {
			for _, e := range entries {
				if len(e.path) == 0 || e.path[0] != '/' {
					t.Errorf("cgroup path %q accepted", e.path)
				}
			}
		}
		_, _ = parseMountinfo(bytes.NewReader(data))
		_ = unescapeMount(string(data))
	})
}
