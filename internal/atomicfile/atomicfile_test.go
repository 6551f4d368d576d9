package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

func TestWriteFile(t *testing.T) {
	t.Run("a new file gets the mode os.Create would give it", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "a.json")
		require.NoError(t, WriteFile(p, []byte("{}"), 0o666))
		ref := filepath.Join(dir, "ref")
		f, err := os.Create(ref)
		require.NoError(t, err)
		f.Close()
		got, err := os.Stat(p)
		require.NoError(t, err)
		want, err := os.Stat(ref)
		require.NoError(t, err)
		assert.Equal(t, want.Mode().Perm(), got.Mode().Perm())
		assert.Equal(t, 0o666&^umask(), got.Mode().Perm())
	})
	t.Run("concurrent writers of one file never share a temporary and one wins whole", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 1<<16), 0o644)
			}()
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Len(t, b, 1<<16)
		assert.Equal(t, bytes.Repeat(b[:1], 1<<16), b, "the file mixes two writers")
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "temporary files were left behind")
	})
	t.Run("a full disk leaves the old file and no temporary", func(t *testing.T) {
		dir := testenv.SmallDisk(t, 64<<10)
		p := filepath.Join(dir, "f")
		require.NoError(t, WriteFile(p, []byte("old"), 0o644))
		err := WriteFile(p, make([]byte, 1<<20), 0o644)
		require.ErrorIs(t, err, syscall.ENOSPC)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Equal(t, "old", string(b))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 1)
	})
}

func TestDir(t *testing.T) {
	t.Run("commit moves the directory into place", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "out")
		d, err := CreateDir(target)
		require.NoError(t, err)
		require.NoError(t, WriteFile(filepath.Join(d.Path(), "x"), []byte("x"), 0o644))
		_, err = os.Stat(target)
		require.ErrorIs(t, err, os.ErrNotExist, "the target exists before commit")
		require.NoError(t, d.Commit())
		b, err := os.ReadFile(filepath.Join(target, "x"))
		require.NoError(t, err)
		assert.Equal(t, "x", string(b))
		entries, err := os.ReadDir(filepath.Dir(target))
		require.NoError(t, err)
		assert.Len(t, entries, 1)
	})
	t.Run("commit replaces an existing directory and nothing of it survives", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "out")
		require.NoError(t, os.MkdirAll(target, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(target, "stale"), nil, 0o644))
		d, err := CreateDir(target)
		require.NoError(t, err)
		require.NoError(t, WriteFile(filepath.Join(d.Path(), "new"), nil, 0o644))
		require.NoError(t, d.Commit())
		entries, err := os.ReadDir(target)
		require.NoError(t, err)
		require.Len(t, entries, 1)
		assert.Equal(t, "new", entries[0].Name())
		entries, err = os.ReadDir(filepath.Dir(target))
		require.NoError(t, err)
		assert.Len(t, entries, 1, "the old directory was left aside")
	})
	t.Run("a link to a directory is followed and the link kept", func(t *testing.T) {
		root := t.TempDir()
		real := filepath.Join(root, "real")
		require.NoError(t, os.Mkdir(real, 0o755))
		link := filepath.Join(root, "link")
		require.NoError(t, os.Symlink(real, link))
		d, err := CreateDir(link)
		require.NoError(t, err)
		require.NoError(t, WriteFile(filepath.Join(d.Path(), "x"), nil, 0o644))
		require.NoError(t, d.Commit())
		fi, err := os.Lstat(link)
		require.NoError(t, err)
		assert.Equal(t, os.ModeSymlink, fi.Mode().Type())
		_, err = os.Stat(filepath.Join(real, "x"))
		assert.NoError(t, err)
	})
	t.Run("abort removes everything written", func(t *testing.T) {
		parent := t.TempDir()
		d, err := CreateDir(filepath.Join(parent, "out"))
		require.NoError(t, err)
		require.NoError(t, WriteFile(filepath.Join(d.Path(), "x"), nil, 0o644))
		d.Abort()
		entries, err := os.ReadDir(parent)
		require.NoError(t, err)
		assert.Empty(t, entries)
	})
}

func TestCreateDirRefusesAMountPoint(t *testing.T) {
	disk := testenv.SmallDisk(t, 1<<20)
	_, err := CreateDir(disk)
	require.ErrorIs(t, err, ErrMountPoint)
	assert.Contains(t, err.Error(), "give a directory inside it")
	entries, err := os.ReadDir(filepath.Dir(disk))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "nothing was created beside the mount point")

	d, err := CreateDir(filepath.Join(disk, "out"))
	require.NoError(t, err, "a directory inside it is fine")
	d.Abort()
}

func TestCreateDirOfTheWorkingDirectoryReplacesIt(t *testing.T) {
	parent := t.TempDir()
	wd := filepath.Join(parent, "wd")
	require.NoError(t, os.Mkdir(wd, 0o755))
	t.Chdir(wd)
	d, err := CreateDir(".")
	require.NoError(t, err)
	assert.Equal(t, wd, d.Target())
	require.NoError(t, WriteFile(filepath.Join(d.Path(), "x"), nil, 0o644))
	require.NoError(t, d.Commit())
	assert.FileExists(t, filepath.Join(wd, "x"))
}
