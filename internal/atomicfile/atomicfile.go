// Package atomicfile writes files and directories so that a reader sees
// either the old content or the complete new one, never a part of it, and so
// that a crash, a full disk or a kill at any moment leaves at most a hidden
// temporary name behind.
//
// Every writer works the same way: the content goes to a fresh name beside
// the target (a dot, the target's base name, ".tmp" and a random suffix, so
// two writers of one target never share a temporary), is synced, and is
// renamed over the target; the directory that holds the target is synced
// last, so the rename itself survives a power loss. Files are created with
// the permission the caller asks for, less the umask, as os.Create does.
//
// A Dir is the same for a whole directory: the caller fills Dir.Path, and
// Commit moves it into place. A directory cannot be renamed over a non-empty
// one, so Commit first moves an existing target aside and removes it once
// the new one is in place; deciding whether the target may be replaced at
// all is the caller's job.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a file being written under a temporary name. Commit puts it in
// place; Abort, or a failed Commit, removes it.
type File struct {
	*os.File
	path string
	done bool
}

// tempName returns a fresh hidden name beside path.
func tempName(path, kind string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+base+kind+hex.EncodeToString(b[:]))
}

// Create starts writing path. The file is created with perm less the umask
// under a temporary name in path's directory.
func Create(path string, perm fs.FileMode) (*File, error) {
	for range 10 {
		f, err := os.OpenFile(tempName(path, ".tmp"), os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &File{File: f, path: path}, nil
	}
	return nil, fmt.Errorf("create a temporary file beside %s: every name tried exists", path)
}

// Target returns the path the file will have after Commit.
func (f *File) Target() string { return f.path }

// Commit syncs the file, closes it, renames it over the target and syncs
// the target's directory. On failure the temporary file is removed and the
// target is untouched.
func (f *File) Commit() error {
	if f.done {
		return errors.New("file already committed or aborted")
	}
	f.done = true
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.File.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.File.Name())
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary file. It does nothing after
// Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// WriteFile writes data to path atomically, creating it with perm less the
// umask.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// WriteJSON writes v as indented JSON and a final newline to path
// atomically, creating it with mode 0666 less the umask.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(path, append(b, '\n'), 0o666)
}

// SyncDir makes the entries of dir (names created, renamed or removed in
// it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Dir is a directory being filled under a temporary name beside its target.
type Dir struct {
	path string
	tmp  string
	done bool
}

// CreateDir makes a fresh temporary directory beside path (path's parent is
// created if missing) and returns it; write into Dir.Path.
func CreateDir(path string) (*Dir, error) {
	// "." and other relative names have no parent to rename in.
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// Replace what a link points to, not the link.
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		return nil, err
	}
	if err := checkNotMountPoint(path); err != nil {
		return nil, err
	}
	for range 10 {
		tmp := tempName(path, ".tmp")
		err := os.Mkdir(tmp, 0o777)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Dir{path: path, tmp: tmp}, nil
	}
	return nil, fmt.Errorf("create a temporary directory beside %s: every name tried exists", path)
}

// ErrMountPoint is returned by CreateDir for a target that is the root of
// a mounted file system: it cannot be renamed, and a temporary directory
// beside it would fill the wrong disk.
var ErrMountPoint = errors.New("the directory is a mount point")

func checkNotMountPoint(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil // nothing there yet: it will be created in its parent
	}
	parent, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return err
	}
	if !sameDevice(st, parent) {
		return fmt.Errorf("%w: %s is the root of a file system; give a directory inside it, such as %s",
			ErrMountPoint, path, filepath.Join(path, "out"))
	}
	return nil
}

// Path returns the temporary directory to write into.
func (d *Dir) Path() string { return d.tmp }

// Target returns the path the directory will have after Commit.
func (d *Dir) Target() string { return d.path }

// Commit syncs the temporary directory and moves it to the target,
// replacing whatever is there: an existing target is first renamed aside,
// then removed once the new directory is in place. The files written into
// the directory must already be synced (File.Commit does that). On failure
// the temporary directory is removed and the target is left as it was.
func (d *Dir) Commit() error {
	if d.done {
		return errors.New("directory already committed or aborted")
	}
	d.done = true
	if err := SyncDir(d.tmp); err != nil {
		os.RemoveAll(d.tmp)
		return err
	}
	var old string
	if _, err := os.Lstat(d.path); err == nil {
		old = tempName(d.path, ".old")
		if err := os.Rename(d.path, old); err != nil {
			os.RemoveAll(d.tmp)
			return err
		}
	}
	if err := os.Rename(d.tmp, d.path); err != nil {
		if old != "" {
			_ = os.Rename(old, d.path)
		}
		os.RemoveAll(d.tmp)
		return err
	}
	if err := SyncDir(filepath.Dir(d.path)); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// Abort removes the temporary directory and everything in it. It does
// nothing after Commit.
func (d *Dir) Abort() {
	if d.done {
		return
	}
	d.done = true
	os.RemoveAll(d.tmp)
}
