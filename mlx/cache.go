package mlx

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/mlxdist/mlxdist/internal/mlxcache"
)

// PinnedVersion is the pip MLX release this module's C ABI library is
// built against. The setup command installs exactly this release, and Load
// looks only for an installation of it.
const PinnedVersion = mlxcache.Version

// EnvCacheDir names the environment variable that, when set, replaces
// os.UserCacheDir()/mlxdist as the place the setup command installs MLX and
// Load looks for it.
const EnvCacheDir = mlxcache.EnvDir

// SetupPackage is the import path of the command that installs MLX for a
// program that imports this module: run it once with `go run`.
const SetupPackage = modulePath + "/mlx/setup"

const modulePath = "github.com/mlxdist/mlxdist"

// ErrIncompleteSetup is matched (errors.Is) by the Attempt of a library
// in the cache directory that Load refused to open: the setup command did
// not finish there, or its files changed since.
var ErrIncompleteSetup = mlxcache.ErrIncomplete

// CacheDir returns the directory the setup command installs the pinned MLX
// into and Load searches: os.UserCacheDir()/mlxdist/<PinnedVersion>, or
// $MLXDIST_CACHE_DIR/<PinnedVersion>.
func CacheDir() (string, error) { return mlxcache.Dir() }

// The C ABI library's sources, compiled by the setup command. They live
// here, beside the Go side that calls them, so that the two always come
// from the same version of the module.
//
//go:embed capi/*.cpp capi/*.h capi/CMakeLists.txt
var capiSources embed.FS

// CAPISources returns the sources of the C ABI library this package binds
// (a CMake project at the root of the file system). The setup command
// writes them into its build directory and compiles them against the pip
// MLX; they are here so that it can do so from the read-only module cache.
func CAPISources() fs.FS {
	sub, err := fs.Sub(capiSources, "capi")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// SetupCommand returns the command line that installs MLX for the running
// program: `go run github.com/mlxdist/mlxdist/mlx/setup@<version>` with
// the version of this module the program was built with, or without a
// version (run it inside the importing module) when the module is replaced
// by a local directory or is the main module. Load's error gives it.
func SetupCommand() string {
	bi, _ := debug.ReadBuildInfo()
	return setupCommand(bi)
}

func setupCommand(bi *debug.BuildInfo) string {
	cmd := "go run " + SetupPackage
	if bi == nil {
		return cmd
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath && d.Replace == nil && d.Version != "" && d.Version != "(devel)" {
			return cmd + "@" + d.Version
		}
	}
	return cmd
}

// setupAdvice is the fix Load's errors give: the setup command line, with
// the CUDA choice where there is one.
func setupAdvice() string {
	s := "`" + SetupCommand() + "`"
	if runtime.GOOS == "linux" {
		s += " (with --backend cuda for NVIDIA GPUs)"
	}
	return s
}

// cachedLibrary returns where the setup command puts the C ABI library, or
// "" when there is no cache directory.
func cachedLibrary() string {
	dir, err := CacheDir()
	if err != nil {
		return ""
	}
	return mlxcache.Layout{Dir: dir}.Library()
}

// checkCandidate says why the library at path must not be opened: an
// absolute path that does not exist, or the setup command's library in an
// installation that is unfinished, changed since, or made for another MLX.
// Such a library is never loaded, even when the file is there.
func checkCandidate(path string) error {
	if !filepath.IsAbs(path) {
		return nil // a bare name is for the dynamic loader to find
	}
	if _, err := os.Stat(path); err != nil {
		return errors.New("no such file")
	}
	if path == cachedLibrary() {
		if _, err := mlxcache.Check(filepath.Dir(filepath.Dir(path))); err != nil {
			var ce *mlxcache.CheckError
			if errors.As(err, &ce) {
				return fmt.Errorf("%w (%s); run `%s` again", ErrIncompleteSetup, ce.Reason, SetupCommand())
			}
			return err
		}
	}
	return nil
}
