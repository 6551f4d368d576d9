//go:build darwin

package memguard

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// The sysctl names and widths below are XNU's: hw.memsize and hw.pagesize
// are 64-bit when looked up by name, the vm.page_* counters are 32-bit
// unsigned page counts.

func physicalMemory() (int64, error) {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0, fmt.Errorf("memguard: sysctl hw.memsize: %w", err)
	}
	return int64(n), nil
}

// availableMemory counts free pages and file-backed pageable pages. The
// latter (vm.page_pageable_external_count) already include the speculative
// read-ahead pages; anonymous memory is left out because reclaiming it means
// compressing or swapping, which is exactly what a guard should not count
// on.
func availableMemory() (int64, error) {
	page, err := unix.SysctlUint64("hw.pagesize")
	if err != nil {
		return 0, fmt.Errorf("memguard: sysctl hw.pagesize: %w", err)
	}
	free, err := unix.SysctlUint32("vm.page_free_count")
	if err != nil {
		return 0, fmt.Errorf("memguard: sysctl vm.page_free_count: %w", err)
	}
	external, err := unix.SysctlUint32("vm.page_pageable_external_count")
	if err != nil {
		return 0, fmt.Errorf("memguard: sysctl vm.page_pageable_external_count: %w", err)
	}
	return (int64(free) + int64(external)) * int64(page), nil
}

// residentMemory is unsupported: the current resident size lives behind
// task_info, a Mach call that needs cgo.
func residentMemory() (int64, error) { return 0, unsupported("current resident size") }

// peakResidentMemory uses ru_maxrss, which macOS reports in bytes (Linux
// reports kilobytes).
func peakResidentMemory() (int64, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("memguard: getrusage: %w", err)
	}
	return int64(ru.Maxrss), nil
}
