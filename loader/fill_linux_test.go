package loader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMappingARangePastTheEndOfTheFileFailsWithoutAFault(t *testing.T) {
	p := filepath.Join(t.TempDir(), "short")
	require.NoError(t, os.WriteFile(p, make([]byte, 3*int(pageSize)+10), 0o644))
	m, err := mapRange(p, 100, 2*pageSize)
	require.NoError(t, err, "a range inside the file maps")
	assert.Len(t, m.data, int(2*pageSize))
	m.data[0] = 1 // private: the write stays in this process
	m.unmap()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Zero(t, b[100], "a write through the mapping reached the file")

	_, err = mapRange(p, pageSize, 8*pageSize)
	assert.ErrorContains(t, err, "file truncated?", "a range past the end is an error, not a SIGBUS later")
}
