package safetensors

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestWrittenFilesGetTheModeOSCreateGives(t *testing.T) {
	dir := t.TempDir()
	ref, err := os.Create(filepath.Join(dir, "ref"))
	require.NoError(t, err)
	ref.Close()
	want, err := os.Stat(ref.Name())
	require.NoError(t, err)
	ts := []TensorData{{"w", U8, []int64{2}, []byte{1, 2}}}
	require.NoError(t, WriteFile(filepath.Join(dir, "a.safetensors"), ts, nil))
	require.NoError(t, WriteDir(filepath.Join(dir), [][]TensorData{ts}, nil))
	for _, name := range []string{"a.safetensors", ShardFileName(1, 1), IndexName} {
		st, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, want.Mode().Perm(), st.Mode().Perm(), name)
	}
}

// openWithin runs open and fails the test if it has not returned in time:
// the bug it guards against is a call that never returns.
func openWithin(t *testing.T, open func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- open() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("open blocked for 10s")
		return nil
	}
}

func TestNonRegularFilesAreRefusedBeforeReading(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.safetensors")
	require.NoError(t, unix.Mkfifo(fifo, 0o644))
	// A writer that never writes keeps a reader that got past open blocked
	// in read; without one, open itself blocks.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	cases := []struct {
		name string
		open func() error
		kind string
	}{
		{"Open of a FIFO", func() error { _, err := Open(fifo); return err }, "named pipe"},
		{"OpenDir of a FIFO", func() error { _, err := OpenDir(fifo); return err }, "named pipe"},
		{"OpenDir of a directory whose only shard file is a FIFO", func() error { _, err := OpenDir(dir); return err }, "named pipe"},
		{"Open of a device", func() error { _, err := Open("/dev/null"); return err }, "device"},
		{"Open of a directory", func() error { _, err := Open(dir); return err }, "directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := openWithin(t, c.open)
			require.ErrorIs(t, err, ErrNotRegular)
			assert.ErrorContains(t, err, c.kind)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

// truncatedFile writes a file with a tensor of several pages, opens it and
// then cuts the file back to its header, as another process might.
func truncatedFile(t *testing.T) *File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cut.safetensors")
	data := make([]byte, 16*os.Getpagesize())
	for i := range data {
		data[i] = byte(i)
	}
	require.NoError(t, WriteFile(p, []TensorData{{"w", U8, []int64{16, int64(os.Getpagesize())}, data}}, nil))
	f, err := Open(p)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	require.True(t, f.Mapped())
	require.NoError(t, os.Truncate(p, f.DataOffset()))
	return f
}

func TestReadsOfAFileTruncatedWhileOpenAreErrorsNotCrashes(t *testing.T) {
	page := os.Getpagesize()
	cases := []struct {
		name string
		read func(f *File) error
	}{
		{"ReadPart", func(f *File) error {
			_, err := f.ReadPart("w", 0, 2, 1, make([]byte, 8*page))
			return err
		}},
		{"ReadPartAt of some columns", func(f *File) error {
			ti, _ := f.Tensor("w")
			p, err := ti.Part(1, Slice{0, 64})
			if err != nil {
				return err
			}
			_, err = f.ReadPartAt(p, make([]byte, p.Size()), 0, ReadMmap)
			return err
		}},
		{"ReadRanges", func(f *File) error {
			_, err := f.ReadRanges([]Range{{f.DataOffset() + int64(4*page), int64(page)}}, make([]byte, page))
			return err
		}},
		{"Data read inside Protect", func(f *File) error {
			return f.Protect(func() error {
				d, err := f.Data("w")
				if err != nil {
					return err
				}
				_ = sha256.Sum256(d)
				return nil
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := truncatedFile(t)
			err := c.read(f)
			require.ErrorIs(t, err, ErrChanged)
			var ce *ChangedError
			require.True(t, errors.As(err, &ce))
			assert.Equal(t, f.Path(), ce.Path)
			assert.Contains(t, err.Error(), f.Path())
			// The pread path reports the same truncation as a short read.
			_, err = readPartMode(f, "w", 0, 2, 1, make([]byte, 8*page), ReadPread)
			assert.Error(t, err)
		})
	}
}

func TestProtectLetsOtherPanicsThrough(t *testing.T) {
	f := truncatedFile(t)
	assert.PanicsWithValue(t, "not a fault", func() {
		_ = f.Protect(func() error { panic("not a fault") })
	})
	want := errors.New("from fn")
	assert.Equal(t, want, f.Protect(func() error { return want }))
}
