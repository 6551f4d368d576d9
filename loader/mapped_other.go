//go:build !darwin && !linux

package loader

type mapping struct{ data []byte }

func (m *mapping) unmap() {}

// mapRange cannot map without mmap: every part is copied.
func mapRange(string, int64, int64) (*mapping, error) { return nil, errCannotMap }
