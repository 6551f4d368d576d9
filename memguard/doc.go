// Package memguard measures memory the way the operating system counts it and
// stops a load before the operating system does.
//
// A macOS machine that runs past its physical memory while MLX materializes
// weights does not kill the process: the kernel's watchdog times out and the
// whole machine panics. A loader must therefore notice on its own that it is
// getting close, and stop with an error a person can act on. That is what a
// [Guard] is for.
//
// # The policy
//
// A Guard allows "used" memory up to a Limit = Physical − Headroom. Physical
// is the machine's memory as [PhysicalMemory] reports it; Headroom is what the
// guard keeps free for the operating system, the page cache and everything
// else on the machine. The default headroom is max(10% of physical, 5 GB), the
// same rule as the Python loader this project grew from; MLX_MEMORY_GUARD_GB
// (a decimal number of GB) replaces it when the guard is built with
// [FromEnv]. GB means 10^9 bytes here and in every message.
//
// "Used" is whatever the caller measures: a loader on MLX passes MLX's active
// memory, a program without MLX can pass [ProcessRSS]. [Guard.Check] asks
// "are we past the limit now?" after a step; [Guard.Fits] asks "would N more
// bytes still fit?" before one. Both return a *[ExceededError] (matching
// [ErrExceeded]) whose message reads like a log line: what was measured, the
// limit, the machine, and what to do about it.
//
// # Measuring memory
//
// [PhysicalMemory], [AvailableMemory], [ResidentMemory] and
// [PeakResidentMemory] ask the operating system without cgo or child
// processes: on macOS through sysctl and getrusage, on Linux through /proc and
// the memory cgroup. On Linux a container's cgroup limit lowers both physical
// and available memory, because that limit, not the host's RAM, is where the
// kernel's OOM killer strikes. On other systems the functions return an error
// matching [ErrUnsupported]; a Guard then needs its physical memory given
// with [WithPhysical].
//
// macOS offers no way to read the current resident size of a process without
// cgo (task_info is a Mach call), so there [ResidentMemory] returns
// [ErrUnsupported] and [ProcessRSS] falls back to the peak resident size. The
// peak is never below the current size, so a guard fed with it trips no later
// than one fed with the current size would.
package memguard
