//go:build !darwin && !linux

package safetensors

import (
	"errors"
	"os"
)

// errNoMmap makes Open fall back to reading: on these systems a File is
// served through ReadAt, as one from NewReader is.
const haveMmap = false

var errNoMmap = errors.New("memory mapping not supported on this system")

func mmapFile(*os.File, int64) ([]byte, error) { return nil, errNoMmap }

func munmap([]byte) error { return nil }

func adviseWillNeed([]byte, int64, int64)   {}
func adviseDontNeed([]byte, int64, int64)   {}
func adviseSequential([]byte, int64, int64) {}
