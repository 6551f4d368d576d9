//go:build !linux && !darwin

package memguard

func physicalMemory() (uint64, error)     { return 0, unsupported("physical memory") }
func availableMemory() (uint64, error)    { return 0, unsupported("available memory") }
func residentMemory() (uint64, error)     { return 0, unsupported("current resident size") }
func peakResidentMemory() (uint64, error) { return 0, unsupported("peak resident size") }
