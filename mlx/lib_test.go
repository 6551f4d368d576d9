package mlx

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

func TestLoadListsEveryPlaceTriedAndHowToFixIt(t *testing.T) {
	dir := t.TempDir()
	notALib := filepath.Join(dir, "libmlxc.so")
	require.NoError(t, os.WriteFile(notALib, []byte("not an ELF file"), 0o644))
	_, err := load([]string{filepath.Join(dir, "missing.so"), notALib})
	var le *LoadError
	require.ErrorAs(t, err, &le)
	assert.ErrorIs(t, err, ErrNotLoaded)
	require.Len(t, le.Tried, 2)
	msg := err.Error()
	assert.Contains(t, msg, "missing.so: no such file")
	assert.Contains(t, msg, notALib)
	assert.Contains(t, msg, "run `go run github.com/mlxdist/mlxdist/mlx/setup")
	assert.Contains(t, msg, "pip MLX "+PinnedVersion)
	assert.Contains(t, msg, "MLX_C_LIBRARY")
}

func TestLoadNamesTheMissingSymbolsOfAnIncompleteLibrary(t *testing.T) {
	// libmlx itself is a real library without the C API: every required
	// symbol is missing, and the error must name them.
	py := testenv.Python(t)
	out, err := exec.Command(py, "-c", "import mlx, os; print(os.path.join(list(mlx.__path__)[0], 'lib'))").Output()
	require.NoError(t, err)
	name := "libmlx.so"
	if runtime.GOOS == "darwin" {
		name = "libmlx.dylib"
	}
	libmlx := filepath.Join(strings.TrimSpace(string(out)), name)
	_, err = load([]string{libmlx})
	var le *LoadError
	require.ErrorAs(t, err, &le)
	assert.Contains(t, le.Missing, "mlx_set_error_handler")
	assert.Contains(t, le.Missing, "mlx_matmul")
	assert.NotContains(t, le.Missing, "mlx_distributed_group_free", "optional symbols are not required")
	msg := err.Error()
	assert.Contains(t, msg, "required symbols")
	assert.Contains(t, msg, "more)", "a long list is summarised")
	assert.NotContains(t, msg, "\n", "one line")
	assert.Less(t, len(msg), 400, "one line a person can read, not every symbol name")
}

func TestALibraryThatIsNotMLXGivesOneShortLine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("libc.so.6 is the C library's name on Linux")
	}
	_, err := load([]string{"libc.so.6"})
	var le *LoadError
	require.ErrorAs(t, err, &le)
	require.Greater(t, len(le.Missing), 50, "libc lacks nearly every symbol")
	msg := err.Error()
	assert.NotContains(t, msg, "\n")
	assert.Less(t, len(msg), 400, msg)
	assert.Contains(t, msg, "more")
	assert.Contains(t, msg, "MLX_C_LIBRARY")

	_, err = load([]string{filepath.Join(t.TempDir(), "a.so"), filepath.Join(t.TempDir(), "b.so")})
	assert.NotContains(t, err.Error(), "\n", "a list of places tried is one line too")
}

func TestTheBuiltLibraryIsFoundFromTheModuleRootAndSpeaksTheMainABI(t *testing.T) {
	if os.Getenv(EnvLibrary) != "" {
		t.Skip("MLX_C_LIBRARY chooses the library")
	}
	c := candidates()
	require.NotEmpty(t, c)
	wd, err := os.Getwd()
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(moduleRoot(wd), "build", "lib", soName("libmlxc")), c[0])
	if err := Load(); err != nil {
		testenv.Unavailable(t, "MLX is not loadable: %v", err)
	}
	assert.Equal(t, ABIMain, lib.abi)
}

func TestAnExplicitLibraryIsTheOnlyCandidate(t *testing.T) {
	t.Setenv(EnvLibrary, "/opt/custom/libmlxc.so")
	assert.Equal(t, []string{"/opt/custom/libmlxc.so"}, candidates())
}

func TestOptionalIntsPackIntoOneRegister(t *testing.T) {
	assert.Equal(t, uint64(0), optInt(64, false))
	assert.Equal(t, uint64(64|1<<32), optInt(64, true))
	assert.Equal(t, uint64(0xffffffff|1<<32), optInt(-1, true))
}
