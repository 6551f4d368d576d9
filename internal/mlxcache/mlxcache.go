// Package mlxcache describes the private MLX installation that the
// mlx/setup command builds and package mlx loads: which MLX release it pins,
// where the installation lives, and the manifest that marks it complete.
//
// An installation is one directory:
//
//	venv/                 a Python virtual environment with the pinned pip MLX
//	capi-src/             the C ABI library's sources, as this module ships them
//	capi/                 their CMake build tree
//	lib/libmlxc.so        the finished library (.dylib on macOS)
//	setup.json            the manifest, written last
//
// The default directory is os.UserCacheDir()/mlxdist/<MLX version>; setting
// MLXDIST_CACHE_DIR replaces os.UserCacheDir()/mlxdist.
//
// The manifest records the library's SHA-256 and the size of the libmlx it
// links. The setup command removes it before it changes anything and writes
// it (to a temporary file, then renamed) only once the library is in place,
// so an installation that was interrupted has no manifest, and one whose
// files changed afterwards no longer matches it. Check refuses both; the
// setup command rebuilds them and package mlx never loads them.
//
// The package is pure Go: it never loads MLX, so the setup command links no
// purego.
package mlxcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// Version is the pip MLX release this module builds its C ABI library
// against, and the only place it is pinned: package mlx, the setup command
// and the repository's Makefile all take it from here.
const Version = "0.32.4"

// EnvDir names the environment variable that, when set, replaces
// os.UserCacheDir()/mlxdist as the root of the installations.
const EnvDir = "MLXDIST_CACHE_DIR"

// ErrIncomplete is matched (errors.Is) by every *CheckError: the
// installation is missing, unfinished or changed, and must be set up again.
var ErrIncomplete = errors.New("incomplete MLX set-up")

// Root returns the directory that holds one installation per MLX version:
// $MLXDIST_CACHE_DIR, or os.UserCacheDir()/mlxdist.
func Root() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return filepath.Abs(d)
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("mlxcache: no user cache directory (%v); set %s to a writable directory", err, EnvDir)
	}
	return filepath.Join(c, "mlxdist"), nil
}

// Dir returns the installation directory of the pinned MLX version.
func Dir() (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, Version), nil
}

// LibraryName is the file name of the C ABI library on this OS.
func LibraryName() string {
	if runtime.GOOS == "darwin" {
		return "libmlxc.dylib"
	}
	return "libmlxc.so"
}

// Layout names the parts of the installation in directory Dir.
type Layout struct{ Dir string }

// Venv is the Python virtual environment holding the pinned pip MLX.
func (l Layout) Venv() string { return filepath.Join(l.Dir, "venv") }

// Sources is where the C ABI library's sources are written for CMake.
func (l Layout) Sources() string { return filepath.Join(l.Dir, "capi-src") }

// Build is the CMake build tree.
func (l Layout) Build() string { return filepath.Join(l.Dir, "capi") }

// Library is the finished C ABI library.
func (l Layout) Library() string { return filepath.Join(l.Dir, "lib", LibraryName()) }

// Manifest is the file whose presence marks the installation complete.
func (l Layout) Manifest() string { return filepath.Join(l.Dir, "setup.json") }

// Manifest describes a complete installation.
type Manifest struct {
	MLXVersion string   `json:"mlx_version"`
	Backend    string   `json:"backend"`  // cpu, metal or cuda
	Packages   []string `json:"packages"` // the pip requirements installed
	Python     string   `json:"python"`   // the environment's interpreter
	// Sources is the SHA-256 of the C ABI library's sources (see
	// SourcesDigest): a module whose sources differ rebuilds the library.
	Sources       string `json:"sources_sha256"`
	Library       string `json:"library"`
	LibrarySHA256 string `json:"library_sha256"`
	LibMLX        string `json:"libmlx"` // the libmlx the library links
	LibMLXSize    int64  `json:"libmlx_size"`
}

// CheckError says why the installation in Dir cannot be used.
type CheckError struct {
	Dir    string
	Reason string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("mlxcache: MLX installation %s is not usable: %s", e.Dir, e.Reason)
}

// Is makes every *CheckError match ErrIncomplete.
func (e *CheckError) Is(target error) bool { return target == ErrIncomplete }

// Check reads the manifest of the installation in dir and verifies it: made
// for the pinned MLX version, its library present with the recorded
// checksum, and the libmlx it links present with the recorded size. It
// returns the manifest, or a *CheckError.
func Check(dir string) (*Manifest, error) {
	l := Layout{dir}
	fail := func(format string, args ...any) (*Manifest, error) {
		return nil, &CheckError{Dir: dir, Reason: fmt.Sprintf(format, args...)}
	}
	b, err := os.ReadFile(l.Manifest())
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir); err != nil {
			return fail("it does not exist")
		}
		return fail("no manifest %s: the set-up did not finish", filepath.Base(l.Manifest()))
	}
	if err != nil {
		return fail("%v", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fail("manifest %s is not valid JSON: %v", l.Manifest(), err)
	}
	if m.MLXVersion != Version {
		return fail("made for MLX %q, this module pins %s", m.MLXVersion, Version)
	}
	if m.Library != l.Library() {
		return fail("manifest names library %s, expected %s", m.Library, l.Library())
	}
	sum, err := FileSHA256(m.Library)
	if err != nil {
		return fail("library: %v", err)
	}
	if sum != m.LibrarySHA256 {
		return fail("library %s has SHA-256 %s, the manifest records %s", m.Library, short(sum), short(m.LibrarySHA256))
	}
	fi, err := os.Stat(m.LibMLX)
	if err != nil {
		return fail("libmlx: %v", err)
	}
	if fi.Size() != m.LibMLXSize {
		return fail("libmlx %s is %d bytes, the manifest records %d", m.LibMLX, fi.Size(), m.LibMLXSize)
	}
	return &m, nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// Write records m as the manifest of the installation in dir, atomically:
// a reader sees either no manifest or the whole of it.
func Write(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	path := Layout{dir}.Manifest()
	tmp, err := os.CreateTemp(dir, ".setup-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Invalidate removes the manifest of the installation in dir, so that
// nothing loads it while it changes. A missing manifest is not an error.
func Invalidate(dir string) error {
	err := os.Remove(Layout{dir}.Manifest())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// FileSHA256 returns the hex SHA-256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
