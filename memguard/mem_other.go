//go:build !linux && !darwin

package memguard

func physicalMemory() (int64, error)     { return 0, unsupported("physical memory") }
func availableMemory() (int64, error)    { return 0, unsupported("available memory") }
func residentMemory() (int64, error)     { return 0, unsupported("current resident size") }
func peakResidentMemory() (int64, error) { return 0, unsupported("peak resident size") }
