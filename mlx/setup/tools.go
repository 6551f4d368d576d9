package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// The oldest versions the build works with: pip MLX has wheels for
// Python 3.10 and later, and mlx/capi's CMakeLists.txt asks for 3.24.
var (
	minPython = [2]int{3, 10}
	minCMake  = [2]int{3, 24}
)

// tools are the programs the build runs.
type tools struct {
	Python        string // creates the environment; "" when it already works
	PythonVersion string
	VenvPython    string // the environment's interpreter when it already works
	CMake         string
	CMakeVersion  string
	CXX           string // a C++20 compiler

	pythonFlag string
}

func (t *tools) describePython() string {
	if t.Python == "" {
		return fmt.Sprintf("Python %s (%s)", t.PythonVersion, t.VenvPython)
	}
	return fmt.Sprintf("Python %s (%s)", t.PythonVersion, t.Python)
}

// requirement is something the build needs and did not find.
type requirement struct {
	What  string // "Python ≥ 3.10"
	Found string // what was looked at, and why it does not do
	Fix   string // how to get it
}

// MissingError lists everything the build needs and did not find, each
// with how to get it.
type MissingError struct{ Missing []requirement }

func (e *MissingError) Error() string {
	parts := make([]string, len(e.Missing))
	for i, r := range e.Missing {
		parts[i] = fmt.Sprintf("missing %s (%s): %s", r.What, r.Found, r.Fix)
	}
	return strings.Join(parts, "; ")
}

// findTools finds Python (unless the environment venvPython already works),
// CMake and a C++20 compiler, and reports everything missing at once.
func findTools(ctx context.Context, pythonFlag, venvPython string) (*tools, error) {
	t := &tools{pythonFlag: pythonFlag}
	var missing []requirement
	if v, err := pythonVersion(ctx, venvPython); err == nil && atLeast(v, minPython) {
		t.VenvPython, t.PythonVersion = venvPython, v
	} else if py, v, r := findPython(ctx, pythonFlag); r != nil {
		missing = append(missing, *r)
	} else {
		t.Python, t.PythonVersion = py, v
	}
	if c, v, r := findCMake(ctx, filepath.Dir(venvPython)); r != nil {
		missing = append(missing, *r)
	} else {
		t.CMake, t.CMakeVersion = c, v
	}
	if cxx, r := findCXX(ctx); r != nil {
		missing = append(missing, *r)
	} else {
		t.CXX = cxx
	}
	if len(missing) > 0 {
		return nil, &MissingError{missing}
	}
	return t, nil
}

func pythonFix() string {
	if runtime.GOOS == "darwin" {
		return "install it (`brew install python@3.12`, or python.org's installer) or pass -python"
	}
	return "install it (`apt-get install python3 python3-venv` on Debian and Ubuntu, or your distribution's python3 ≥ 3.10) or pass -python"
}

// findPython returns the interpreter named by flag, or else the first
// Python ≥ 3.10 on PATH, preferring plain python3.
func findPython(ctx context.Context, flag string) (string, string, *requirement) {
	what := fmt.Sprintf("Python ≥ %d.%d", minPython[0], minPython[1])
	names := []string{"python3", "python3.14", "python3.13", "python3.12", "python3.11", "python3.10", "python"}
	if flag != "" {
		names = []string{flag}
	}
	var seen []string
	for _, name := range names {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		v, exe, err := pythonIdentity(ctx, path)
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s does not run: %v", name, firstLine(err.Error())))
			continue
		}
		if atLeast(v, minPython) {
			return exe, v, nil
		}
		seen = append(seen, fmt.Sprintf("%s is %s", name, v))
	}
	found := "none on PATH"
	if flag != "" {
		found = fmt.Sprintf("-python %s not found", flag)
	}
	if len(seen) > 0 {
		found = strings.Join(seen, ", ")
	}
	return "", "", &requirement{what, found, pythonFix()}
}

func pythonVersion(ctx context.Context, py string) (string, error) {
	v, _, err := pythonIdentity(ctx, py)
	return v, err
}

// pythonIdentity returns the version of the interpreter py and the file it
// really runs from, so that a version manager's shim is not what the
// environment is made with.
func pythonIdentity(ctx context.Context, py string) (version, executable string, err error) {
	if _, err := os.Stat(py); err != nil && filepath.IsAbs(py) {
		return "", "", err
	}
	out, err := runCmd(ctx, "", py, "-I", "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)")
	if err != nil {
		return "", "", err
	}
	version, executable, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	if executable == "" {
		executable = py
	}
	return version, executable, nil
}

var cmakeVersion = regexp.MustCompile(`cmake version (\d+\.\d+(?:\.\d+)?)`)

// findCMake returns CMake ≥ 3.24 from PATH or from the Python environment's
// bin directory (where `pip install cmake` puts it).
func findCMake(ctx context.Context, venvBin string) (string, string, *requirement) {
	what := fmt.Sprintf("CMake ≥ %d.%d", minCMake[0], minCMake[1])
	fix := "install it (`brew install cmake` on macOS, `apt-get install cmake` on Debian and Ubuntu, or `python3 -m pip install cmake`)"
	var seen []string
	var paths []string
	if p, err := exec.LookPath("cmake"); err == nil {
		paths = append(paths, p)
	}
	if p := filepath.Join(venvBin, "cmake"); fileExists(p) {
		paths = append(paths, p)
	}
	for _, p := range paths {
		out, err := runCmd(ctx, "", p, "--version")
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s does not run", p))
			continue
		}
		m := cmakeVersion.FindStringSubmatch(string(out))
		if m == nil {
			seen = append(seen, fmt.Sprintf("%s printed no version", p))
			continue
		}
		if atLeast(m[1], minCMake) {
			return p, m[1], nil
		}
		seen = append(seen, fmt.Sprintf("%s is %s", p, m[1]))
	}
	found := "no cmake on PATH"
	if len(seen) > 0 {
		found = strings.Join(seen, ", ")
	}
	return "", "", &requirement{what, found, fix}
}

// A program only a C++20 compiler and library accept: concepts and
// std::span, both of which MLX's headers use.
const cxxProbe = `#include <concepts>
#include <span>
template <std::integral T> constexpr T twice(T x) { return x + x; }
int main() {
  int a[2] = {1, 2};
  std::span<int> s(a);
  return twice(static_cast<int>(s.size())) == 4 ? 0 : 1;
}
`

// findCXX returns $CXX, or else the first of c++, clang++ and g++ on PATH,
// that compiles a C++20 program.
func findCXX(ctx context.Context) (string, *requirement) {
	fix := "install one (`xcode-select --install` on macOS; `apt-get install g++` (GCC ≥ 10) or clang ≥ 13 on Linux) or set CXX"
	if runtime.GOOS == "darwin" {
		fix = "install Xcode's command line tools (`xcode-select --install`) or set CXX"
	}
	names := []string{"c++", "clang++", "g++"}
	if cxx := strings.Fields(os.Getenv("CXX")); len(cxx) > 0 {
		names = cxx[:1]
	}
	dir, err := os.MkdirTemp("", "mlxdist-setup-")
	if err != nil {
		return "", &requirement{"a C++20 compiler", err.Error(), fix}
	}
	defer os.RemoveAll(dir)
	probe := filepath.Join(dir, "probe.cpp")
	if err := os.WriteFile(probe, []byte(cxxProbe), 0o644); err != nil {
		return "", &requirement{"a C++20 compiler", err.Error(), fix}
	}
	var seen []string
	for _, name := range names {
		path, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if _, err := runCmd(ctx, dir, path, "-std=c++20", "-fsyntax-only", probe); err != nil {
			seen = append(seen, fmt.Sprintf("%s rejects C++20", path))
			continue
		}
		return path, nil
	}
	found := "none of " + strings.Join(names, ", ") + " on PATH"
	if len(seen) > 0 {
		found = strings.Join(seen, ", ")
	}
	return "", &requirement{"a C++20 compiler", found, fix}
}

// atLeast reports whether the dotted version v is at least min.
func atLeast(v string, min [2]int) bool {
	f := strings.SplitN(v, ".", 3)
	if len(f) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
