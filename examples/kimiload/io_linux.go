package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// storageRead returns the bytes this process has caused to be fetched from
// storage (read_bytes of /proc/self/io: page-cache misses, readahead
// included, whether by read(2) or by a page fault), or -1 when unknown.
func storageRead() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "read_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
