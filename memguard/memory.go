package memguard

import (
	"errors"
	"fmt"
	"runtime"
)

// ErrUnsupported is matched by errors from measurements the running operating
// system does not offer. It also matches [errors.ErrUnsupported].
var ErrUnsupported = fmt.Errorf("memguard: not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// ErrFormat is matched by errors from operating system files (/proc, cgroup
// files) whose content memguard could not read.
var ErrFormat = errors.New("memguard: unexpected file format")

// A Source measures the memory a Guard compares with its limit, in bytes.
// MLX's active memory is the usual one; [ProcessRSS] is one that needs no
// MLX.
type Source func() (int64, error)

// PhysicalMemory returns the memory this process can use at most, in bytes:
// the machine's RAM (hw.memsize on macOS, MemTotal on Linux), lowered on
// Linux to the memory limit of the process's cgroup when that is smaller.
func PhysicalMemory() (int64, error) { return physicalMemory() }

// AvailableMemory returns how many more bytes the system could hand out now
// without swapping or killing anything, as the operating system estimates
// it. On Linux this is MemAvailable, lowered to the room left under the
// cgroup limit (limit minus the cgroup's usage) when that is smaller. On macOS
// it is the free pages plus the file-backed pageable pages (the page cache,
// speculative read-ahead included), which the kernel drops before it pages
// out anything else.
func AvailableMemory() (int64, error) { return availableMemory() }

// ResidentMemory returns this process's current resident set size in bytes
// (VmRSS on Linux). On macOS it returns an error matching [ErrUnsupported]:
// see the package documentation.
func ResidentMemory() (int64, error) { return residentMemory() }

// PeakResidentMemory returns the largest resident set size this process has
// had, in bytes (VmHWM on Linux, getrusage's ru_maxrss on macOS).
func PeakResidentMemory() (int64, error) { return peakResidentMemory() }

// ProcessRSS is a [Source] for programs without MLX: this process's current
// resident size where the operating system tells it, and its peak resident
// size where it does not (macOS), which overstates rather than understates.
func ProcessRSS() (int64, error) {
	n, err := residentMemory()
	if errors.Is(err, ErrUnsupported) {
		return peakResidentMemory()
	}
	return n, err
}

func unsupported(what string) error {
	return fmt.Errorf("memguard: %s: %w", what, ErrUnsupported)
}
