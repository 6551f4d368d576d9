package loader

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/safetensors"
)

// pageCached reports whether every page of [off, off+n) of the file at
// path is in the page cache.
func pageCached(t *testing.T, path string, off, n int64) bool {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, int(fileSize(t, path)), unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err)
	defer unix.Munmap(m)
	r, p := testenv.ResidentPages(t, m[off:off+n])
	return r == p
}

func TestEvalShardEvalHasTheNextSectionReadAhead(t *testing.T) {
	requireMLX(t)
	// Layers of about 20 MB in one file, in order: the last tensor of a
	// layer lies well past what the OS reads ahead of the one before.
	dir := llamaLike(5, 1024, 2048, 3, 64).write(t, 1)
	files, err := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	path := files[0]
	testenv.DropFromPageCache(t, path)
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	down := func(layer string) (int64, int64) {
		ti, ok := f.Tensor("model.layers." + layer + ".mlp.down_proj.weight")
		require.True(t, ok)
		return ti.Offset, ti.Size()
	}
	off0, n0 := down("0")
	off1, n1 := down("1")
	require.NoError(t, f.Close())
	if pageCached(t, path, off0, n0) {
		t.Skip("the page cache kept the file after FADV_DONTNEED: the check below would prove nothing")
	}

	o := bigGuard(t)
	o.Rank, o.WorldSize, o.Strategy, o.Rules = 0, 2, EvalShardEval, LlamaRules(8, 4)
	l, err := Open(dir, o)
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, "layers.0", l.Plan().Sections[1].Name)
	for layer, err := range l.Layers(context.Background()) {
		require.NoError(t, err)
		first := layer.Index == 0
		layer.Free()
		if !first {
			continue
		}
		// While "before" was evaluated, layers.0 was read ahead; layers.1
		// waits for its turn.
		deadline := time.Now().Add(5 * time.Second)
		for !pageCached(t, path, off0, n0) {
			if time.Now().After(deadline) {
				t.Fatal("layers.0 not in the page cache 5 s after the section before it was loaded")
			}
			time.Sleep(10 * time.Millisecond)
		}
		assert.False(t, pageCached(t, path, off1, n1), "layers.1 read ahead two sections early")
	}
}
