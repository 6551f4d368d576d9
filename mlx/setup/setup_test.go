package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

func TestTheMakefileInstallsTheMLXThatPackageMLXPins(t *testing.T) {
	root := testenv.RepoRoot()
	require.NotEmpty(t, root)
	makeTool, err := exec.LookPath("make")
	if err != nil {
		testenv.Unavailable(t, "no make: %v", err)
	}
	cmd := exec.Command(makeTool, "-s", "--no-print-directory", "-C", root, "mlx-version")
	out, err := cmd.Output()
	require.NoError(t, err)
	assert.Equal(t, mlx.PinnedVersion, strings.TrimSpace(string(out)))

	// make setup is this command pointed at the checkout, not a second
	// way to build.
	out, err = exec.Command(makeTool, "-n", "--no-print-directory", "-C", root, "capi").Output()
	require.NoError(t, err)
	assert.Contains(t, string(out), "go run ./mlx/setup -dir build -venv .venv")
}

func TestEachBackendInstallsItsOwnWheel(t *testing.T) {
	tests := []struct {
		name, backend, goos string
		pkg                 string // "" when refused
		errContains         string
	}{
		{"macOS gets Metal by default", "auto", "darwin", "mlx-metal", ""},
		{"Linux gets the CPU back-end by default", "auto", "linux", "mlx-cpu", ""},
		{"an empty choice is the default", "", "linux", "mlx-cpu", ""},
		{"Linux asks for CUDA 13", "cuda", "linux", "mlx-cuda-13", ""},
		{"CUDA on macOS is refused with the choice there is", "cuda", "darwin", "", "use --backend metal"},
		{"Metal on Linux is refused with the choices there are", "metal", "linux", "", "use --backend cpu or cuda"},
		{"an unknown back-end lists the known ones", "rocm", "linux", "", `unknown back-end "rocm": use auto, cpu, metal or cuda`},
		{"an OS without wheels is named", "auto", "windows", "", "no back-end for windows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := resolveBackend(tt.backend, tt.goos)
			if tt.pkg == "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.errContains)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.pkg, b.Package)
			assert.Equal(t, []string{"mlx==" + mlx.PinnedVersion, tt.pkg + "==" + mlx.PinnedVersion}, b.requirements())
		})
	}
}

func TestPythonBelow310AndCMakeBelow324AreRefused(t *testing.T) {
	tests := []struct {
		version string
		min     [2]int
		ok      bool
	}{
		{"3.9.6", minPython, false},
		{"3.10.0", minPython, true},
		{"3.13.1", minPython, true},
		{"4.0.0", minPython, true},
		{"2.7.18", minPython, false},
		{"3", minPython, false},
		{"3.x", minPython, false},
		{"3.22.1", minCMake, false},
		{"3.24", minCMake, true},
		{"4.1.2", minCMake, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.ok, atLeast(tt.version, tt.min), "%s against %d.%d", tt.version, tt.min[0], tt.min[1])
	}
}

// realPython returns a Python ≥ 3.10 of this machine, as the setup command
// would find it.
func realPython(t *testing.T) string {
	t.Helper()
	py, _, r := findPython(t.Context(), "")
	if r != nil {
		testenv.Unavailable(t, "no Python ≥ 3.10: %s", r.Found)
	}
	return py
}

func TestWhatTheBuildLacksIsNamedWithHowToGetIt(t *testing.T) {
	py := realPython(t)
	onlyPython := t.TempDir()
	require.NoError(t, os.Symlink(py, filepath.Join(onlyPython, "python3")))
	tests := []struct {
		name    string
		path    string
		args    []string
		missing []string
		present []string
	}{
		{"nothing on PATH: all three are named", t.TempDir(), nil,
			[]string{"missing Python ≥ 3.10 (none on PATH): install it", "missing CMake ≥ 3.24 (no cmake on PATH): install it (`brew install cmake`", "missing a C++20 compiler (none of c++, clang++, g++ on PATH): install one"},
			nil},
		{"only Python on PATH: CMake and the compiler are named", onlyPython, nil,
			[]string{"missing CMake ≥ 3.24", "missing a C++20 compiler"},
			[]string{"Python"}},
		{"a -python that does not exist is named", onlyPython, []string{"-python", "/nonexistent/python3.12"},
			[]string{"missing Python ≥ 3.10 (-python /nonexistent/python3.12 not found)"},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			t.Setenv("CXX", "")
			t.Setenv(mlx.EnvCacheDir, t.TempDir())
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			assert.Equal(t, 1, code)
			msg := stderr.String()
			assert.Equal(t, 1, strings.Count(msg, "\n"), "one line: %q", msg)
			for _, s := range tt.missing {
				assert.Contains(t, msg, s)
			}
			for _, s := range tt.present {
				assert.NotContains(t, msg, s)
			}
		})
	}
}

func TestAnEnvironmentTheUserNamedIsNeverSwitchedToAnotherBackend(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux has a second back-end (cuda) to ask for")
	}
	// The project's environment holds mlx-cpu; asking it for CUDA must stop
	// before pip touches it.
	venv := filepath.Dir(filepath.Dir(testenv.Python(t)))
	var stdout, stderr bytes.Buffer
	code := run([]string{"-dir", t.TempDir(), "-venv", venv, "-backend", "cuda"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "holds mlx-cpu "+mlx.PinnedVersion+", not mlx-cuda-13: uninstall it there or choose another -venv")
	assert.NotContains(t, stdout.String(), "installing")
}
