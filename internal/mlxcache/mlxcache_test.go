package mlxcache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTheInstallationLivesUnderTheUserCacheUnlessMoved(t *testing.T) {
	t.Setenv(EnvDir, "")
	userCache, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("no user cache directory here: %v", err)
	}
	dir, err := Dir()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(userCache, "mlxdist", Version), dir)

	moved := t.TempDir()
	t.Setenv(EnvDir, moved)
	dir, err = Dir()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(moved, Version), dir)
}

func TestAManifestIsWholeOrAbsent(t *testing.T) {
	dir := t.TempDir()
	_, err := Check(filepath.Join(dir, "nothing-here"))
	assert.ErrorIs(t, err, ErrIncomplete)
	assert.ErrorContains(t, err, "it does not exist")

	l := Layout{dir}
	require.NoError(t, os.MkdirAll(filepath.Dir(l.Library()), 0o755))
	require.NoError(t, os.WriteFile(l.Library(), []byte("library bytes"), 0o644))
	libmlx := filepath.Join(dir, "libmlx")
	require.NoError(t, os.WriteFile(libmlx, []byte("libmlx bytes"), 0o644))
	sum, err := FileSHA256(l.Library())
	require.NoError(t, err)
	m := &Manifest{MLXVersion: Version, Backend: "cpu", Library: l.Library(), LibrarySHA256: sum, LibMLX: libmlx, LibMLXSize: 12}
	require.NoError(t, Write(dir, m))
	got, err := Check(dir)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), ".setup-", "no temporary manifest is left behind")
	}

	require.NoError(t, Invalidate(dir))
	require.NoError(t, Invalidate(dir), "invalidating twice is fine")
	_, err = Check(dir)
	var ce *CheckError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "no manifest setup.json: the set-up did not finish", ce.Reason)
}
