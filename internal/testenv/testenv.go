// Package testenv finds the parts of the development environment that tests
// run against: the repository root, the project's Python virtual environment
// (real MLX, safetensors and mlx-lm from pip) and the C ABI library built by
// `make setup`.
//
// When MLX_REQUIRED=1 (as `make test` and CI set it) a missing part fails the
// test instead of skipping it, so a broken setup can never pass as green.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Required reports whether MLX_REQUIRED=1 is set: missing MLX or Python is
// then a failure, not a skip.
func Required() bool { return os.Getenv("MLX_REQUIRED") == "1" }

// RepoRoot returns the directory holding this module's go.mod, found by
// walking up from the working directory. It returns "" when there is none.
func RepoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isOurModule(b) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isOurModule(gomod []byte) bool {
	const want = "module github.com/mlxdist/mlxdist"
	return len(gomod) >= len(want) && string(gomod[:len(want)]) == want
}

// Unavailable skips t, or fails it when MLX_REQUIRED=1, with the reason.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("MLX_REQUIRED=1 but "+format, args...)
	}
	t.Skipf(format, args...)
}

// Python returns the project's virtual-environment interpreter (or
// $MLXDIST_PYTHON), skipping or failing t when there is none.
func Python(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MLXDIST_PYTHON"); p != "" {
		return p
	}
	root := RepoRoot()
	bin := "bin/python"
	if runtime.GOOS == "windows" {
		bin = "Scripts/python.exe"
	}
	p := filepath.Join(root, ".venv", bin)
	if root == "" {
		Unavailable(t, "no repository root found from the working directory")
	}
	if _, err := os.Stat(p); err != nil {
		Unavailable(t, "no project Python at %s: run `make setup`", p)
	}
	return p
}

// RunPython runs a Python script with the project's interpreter and returns
// its standard output, failing t with the script's standard error otherwise.
func RunPython(t testing.TB, script string, args ...string) []byte {
	t.Helper()
	return RunPythonStdin(t, script, "", args...)
}

// RunPythonStdin is RunPython with stdin as the script's standard input.
func RunPythonStdin(t testing.TB, script, stdin string, args ...string) []byte {
	t.Helper()
	py := Python(t)
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("python: %v\n%s", err, stderr)
	}
	return out
}

// GoBuild builds the Go package pkg (a path relative to the test's
// directory, as `go build` takes it) into a fresh temporary directory with
// CGO_ENABLED=0, as users build, and returns the binary's path.
func GoBuild(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(filepath.Clean(pkg)))
	if pkg == "." {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		bin = filepath.Join(filepath.Dir(bin), filepath.Base(wd))
	}
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
