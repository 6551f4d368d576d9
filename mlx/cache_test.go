package mlx

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/mlxcache"
	"github.com/mlxdist/mlxdist/internal/testenv"
)

func TestTheSetupCacheIsSearchedAfterTheCheckoutAndBeforeTheSystem(t *testing.T) {
	t.Setenv(EnvLibrary, "")
	cache := t.TempDir()
	t.Setenv(EnvCacheDir, cache)
	c := candidates()
	lib := filepath.Join(cache, PinnedVersion, "lib", soName("libmlxc"))
	at := slices.Index(c, lib)
	require.NotEqual(t, -1, at, "the cache library is a candidate: %v", c)
	wd, err := os.Getwd()
	require.NoError(t, err)
	checkout := slices.Index(c, filepath.Join(moduleRoot(wd), "build", "lib", soName("libmlxc")))
	system := slices.Index(c, filepath.Join("/usr/local/lib", soName("libmlxc")))
	require.NotEqual(t, -1, checkout)
	require.NotEqual(t, -1, system)
	assert.Less(t, checkout, at, "a checkout's own build comes first")
	assert.Less(t, at, system, "the cache comes before the system locations")

	t.Setenv(EnvLibrary, "/opt/custom/libmlxc.so")
	assert.NotContains(t, candidates(), lib, "MLX_C_LIBRARY is the only candidate")
}

// cacheInstallation lays out an installation of the real C ABI library (the
// one the checkout built) and the real libmlx of the project's Python, with
// a manifest as the setup command writes it, and returns its directory.
func cacheInstallation(t *testing.T) (string, *mlxcache.Manifest) {
	t.Helper()
	built := filepath.Join(testenv.RepoRoot(), "build", "lib", soName("libmlxc"))
	src, err := os.ReadFile(built)
	if err != nil {
		testenv.Unavailable(t, "no C ABI library built in the checkout: %v", err)
	}
	libDir := strings.TrimSpace(string(testenv.RunPython(t, "import mlx, os; print(os.path.join(list(mlx.__path__)[0], 'lib'))")))
	libmlx := filepath.Join(libDir, soName("libmlx"))
	fi, err := os.Stat(libmlx)
	require.NoError(t, err)

	root := t.TempDir()
	t.Setenv(EnvCacheDir, root)
	dir, err := CacheDir()
	require.NoError(t, err)
	l := mlxcache.Layout{Dir: dir}
	require.NoError(t, os.MkdirAll(filepath.Dir(l.Library()), 0o755))
	require.NoError(t, os.WriteFile(l.Library(), src, 0o755))
	sum, err := mlxcache.FileSHA256(l.Library())
	require.NoError(t, err)
	m := &mlxcache.Manifest{
		MLXVersion: PinnedVersion, Backend: "cpu", Library: l.Library(),
		LibrarySHA256: sum, LibMLX: libmlx, LibMLXSize: fi.Size(),
	}
	require.NoError(t, mlxcache.Write(dir, m))
	return dir, m
}

func TestALibraryInAnUnfinishedOrChangedSetupIsNeverOpened(t *testing.T) {
	tests := []struct {
		name   string
		breaks func(t *testing.T, dir string, m *mlxcache.Manifest)
		reason string
	}{
		{"a setup killed before it wrote its manifest", func(t *testing.T, dir string, m *mlxcache.Manifest) {
			require.NoError(t, mlxcache.Invalidate(dir))
		}, "no manifest setup.json: the set-up did not finish"},
		{"a library changed after the setup", func(t *testing.T, dir string, m *mlxcache.Manifest) {
			f, err := os.OpenFile(m.Library, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.Write([]byte{0})
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, "has SHA-256"},
		{"a libmlx that is not the one the setup installed", func(t *testing.T, dir string, m *mlxcache.Manifest) {
			m.LibMLXSize++
			require.NoError(t, mlxcache.Write(dir, m))
		}, "the manifest records"},
		{"a setup made for another MLX", func(t *testing.T, dir string, m *mlxcache.Manifest) {
			m.MLXVersion = "0.30.0"
			require.NoError(t, mlxcache.Write(dir, m))
		}, `made for MLX "0.30.0"`},
		{"a manifest that is not JSON", func(t *testing.T, dir string, m *mlxcache.Manifest) {
			require.NoError(t, os.WriteFile(mlxcache.Layout{Dir: dir}.Manifest(), []byte(`{"mlx_version": "0.3`), 0o644))
		}, "is not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, m := cacheInstallation(t)
			require.NoError(t, checkCandidate(m.Library), "the complete installation is accepted")
			tt.breaks(t, dir, m)

			// Every one of these libraries would open (trailing bytes and
			// a manifest do not stop dlopen): only the check keeps them out.
			_, err := load([]string{m.Library})
			var le *LoadError
			require.ErrorAs(t, err, &le)
			assert.ErrorIs(t, err, ErrNotLoaded)
			require.Len(t, le.Tried, 1)
			assert.Empty(t, le.Missing, "the library was never opened")
			assert.ErrorIs(t, le.Tried[0].Err, ErrIncompleteSetup)
			assert.Contains(t, le.Tried[0].Err.Error(), tt.reason)
			assert.Contains(t, le.Tried[0].Err.Error(), "run `"+SetupCommand()+"` again")
		})
	}
}

func TestTheSetupCommandCarriesTheModuleVersionTheProgramWasBuiltWith(t *testing.T) {
	dep := func(version string, replaced bool) *debug.BuildInfo {
		m := &debug.Module{Path: "github.com/mlxdist/mlxdist", Version: version}
		if replaced {
			m.Replace = &debug.Module{Path: "../mlxdist"}
		}
		return &debug.BuildInfo{Main: debug.Module{Path: "example.com/app"}, Deps: []*debug.Module{
			{Path: "github.com/ebitengine/purego", Version: "v0.10.2"}, m,
		}}
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"a released dependency names its version", dep("v0.4.1", false), "go run github.com/mlxdist/mlxdist/mlx/setup@v0.4.1"},
		{"a pseudo-version is named as it is", dep("v0.0.0-20261203081500-68da858aa1b2", false), "go run github.com/mlxdist/mlxdist/mlx/setup@v0.0.0-20261203081500-68da858aa1b2"},
		{"a dependency replaced by a directory runs inside the importing module", dep("v0.4.1", true), "go run github.com/mlxdist/mlxdist/mlx/setup"},
		{"the module itself runs the checkout's command", &debug.BuildInfo{Main: debug.Module{Path: "github.com/mlxdist/mlxdist", Version: "(devel)"}}, "go run github.com/mlxdist/mlxdist/mlx/setup"},
		{"no build information still gives a command", nil, "go run github.com/mlxdist/mlxdist/mlx/setup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, setupCommand(tt.bi))
		})
	}
}
