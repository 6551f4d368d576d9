package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/mlxdist/mlxdist/internal/mlxcache"
	"github.com/mlxdist/mlxdist/mlx"
)

// options is what one run of the command is asked to do.
type options struct {
	Dir     string // the installation directory
	Cache   bool   // Dir is the one package mlx searches (mlx.CacheDir)
	Venv    string // the Python environment; "" means Dir/venv
	Python  string // the interpreter that creates the environment; "" means search PATH
	Backend string // auto, cpu, metal or cuda
	Jobs    int
	Force   bool
}

// backend is one of MLX's pip back-ends.
type backend struct {
	Name    string // cpu, metal, cuda
	Package string // its pip package
}

// resolveBackend maps --backend to a pip package for the OS goos.
func resolveBackend(name, goos string) (backend, error) {
	if name == "" || name == "auto" {
		switch goos {
		case "darwin":
			name = "metal"
		case "linux":
			name = "cpu"
		default:
			return backend{}, fmt.Errorf("pip MLX has no back-end for %s: use macOS (metal) or Linux (cpu, cuda)", goos)
		}
	}
	switch {
	case name == "metal" && goos == "darwin":
		return backend{"metal", "mlx-metal"}, nil
	case name == "cpu" && goos == "linux":
		return backend{"cpu", "mlx-cpu"}, nil
	case name == "cuda" && goos == "linux":
		return backend{"cuda", "mlx-cuda-13"}, nil
	case name == "metal" || name == "cpu" || name == "cuda":
		return backend{}, fmt.Errorf("back-end %q has no pip MLX for %s: use --backend %s", name, goos, map[string]string{"darwin": "metal", "linux": "cpu or cuda"}[goos])
	}
	return backend{}, fmt.Errorf("unknown back-end %q: use auto, cpu, metal or cuda", name)
}

// backendPackages are every pip back-end of MLX: one environment holds one,
// since each of them installs mlx/lib/libmlx.
var backendPackages = []string{"mlx-cpu", "mlx-metal", "mlx-cuda-12", "mlx-cuda-13"}

// requirements are the pip requirements of the pinned MLX on back-end b.
func (b backend) requirements() []string {
	return []string{"mlx==" + mlx.PinnedVersion, b.Package + "==" + mlx.PinnedVersion}
}

// setup brings the installation in opt.Dir up to date and reports on w.
func setup(ctx context.Context, opt options, w io.Writer) error {
	b, err := resolveBackend(opt.Backend, runtime.GOOS)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(opt.Dir)
	if err != nil {
		return err
	}
	l := mlxcache.Layout{Dir: dir}
	venv := l.Venv()
	if opt.Venv != "" {
		if venv, err = filepath.Abs(opt.Venv); err != nil {
			return err
		}
	}
	venvPython := filepath.Join(venv, "bin", "python")
	_, statErr := os.Stat(dir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %v; choose another place with --dir or %s", dir, err, mlx.EnvCacheDir)
	}
	unlock, err := lockDir(dir, func() {
		fmt.Fprintf(w, "setup: waiting for another setup of %s to finish\n", dir)
	})
	if err != nil {
		return err
	}
	defer unlock()

	sources, err := sourcesDigest(mlx.CAPISources())
	if err != nil {
		return err
	}
	want := &mlxcache.Manifest{
		MLXVersion: mlx.PinnedVersion,
		Backend:    b.Name,
		Packages:   b.requirements(),
		Python:     venvPython,
		Sources:    sources,
		Library:    l.Library(),
	}
	m, checkErr := mlxcache.Check(dir)
	if checkErr == nil {
		checkErr = sameInstallation(m, want)
		if checkErr == nil && !opt.Force {
			fmt.Fprintf(w, "setup: up to date: MLX %s (%s), %s; nothing to do\n", m.MLXVersion, m.Backend, m.Library)
			return nil
		}
	}
	fmt.Fprintf(w, "setup: MLX %s (%s) into %s\n", mlx.PinnedVersion, b.Name, dir)
	switch {
	case checkErr != nil && !fresh:
		fmt.Fprintf(w, "setup: rebuilding: %s\n", reason(checkErr))
	case checkErr == nil:
		fmt.Fprintln(w, "setup: rebuilding: -force")
	}
	// From here on the installation changes: without a manifest nothing
	// loads it until the new one is written at the very end.
	if err := mlxcache.Invalidate(dir); err != nil {
		return err
	}

	tools, err := findTools(ctx, opt.Python, venvPython)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "setup: using %s, CMake %s, C++ compiler %s\n", tools.describePython(), tools.CMakeVersion, tools.CXX)

	owned := venv == l.Venv()
	if err := ensureVenv(ctx, tools, venv, owned, w); err != nil {
		return err
	}
	info, err := ensureMLX(ctx, tools, venv, owned, b, w)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "setup: compiling the C ABI library in %s\n", l.Build())
	built, err := compile(ctx, tools, l, info.CMakeDir, opt.Jobs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(l.Library()), 0o755); err != nil {
		return err
	}
	if err := os.Rename(built, l.Library()); err != nil {
		return err
	}
	want.LibrarySHA256, err = mlxcache.FileSHA256(l.Library())
	if err != nil {
		return err
	}
	fi, err := os.Stat(info.LibMLX)
	if err != nil {
		return err
	}
	want.LibMLX, want.LibMLXSize = info.LibMLX, fi.Size()
	if err := mlxcache.Write(dir, want); err != nil {
		return err
	}
	fmt.Fprintf(w, "setup: installed %s\n", l.Library())
	if opt.Cache {
		fmt.Fprintln(w, "setup: package mlx loads it from there; nothing to set")
	} else {
		fmt.Fprintf(w, "setup: to use it outside a checkout of mlxdist, set %s=%s\n", mlx.EnvLibrary, l.Library())
	}
	return nil
}

// sameInstallation reports how a complete installation differs from the
// one this run would make.
func sameInstallation(have, want *mlxcache.Manifest) error {
	switch {
	case have.Backend != want.Backend:
		return fmt.Errorf("it holds the %s back-end, %s was asked for", have.Backend, want.Backend)
	case !slices.Equal(have.Packages, want.Packages):
		return fmt.Errorf("it holds %s, %s was asked for", strings.Join(have.Packages, " "), strings.Join(want.Packages, " "))
	case have.Python != want.Python:
		return fmt.Errorf("it uses the Python environment %s, %s was asked for", filepath.Dir(filepath.Dir(have.Python)), filepath.Dir(filepath.Dir(want.Python)))
	case have.Sources != want.Sources:
		return errors.New("this module's C ABI sources differ from the ones it was built from")
	}
	return nil
}

func reason(err error) string {
	var ce *mlxcache.CheckError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return err.Error()
}

// sourcesDigest hashes every file name and content of fsys, in order.
func sourcesDigest(fsys fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

// ensureVenv makes sure venv holds a working Python environment. A broken
// one that this command owns is made anew; one the user named is not
// touched.
func ensureVenv(ctx context.Context, t *tools, venv string, owned bool, w io.Writer) error {
	py := filepath.Join(venv, "bin", "python")
	if _, err := os.Stat(py); err == nil {
		if _, err := runCmd(ctx, "", py, "-I", "-m", "pip", "--version"); err == nil {
			return nil
		} else if !owned {
			return fmt.Errorf("the Python environment %s does not work (%v); repair or remove it", venv, err)
		}
		fmt.Fprintf(w, "setup: the Python environment %s is broken; making it anew\n", venv)
	}
	if t.Python == "" {
		py, v, r := findPython(ctx, t.pythonFlag)
		if r != nil {
			return &MissingError{[]requirement{*r}}
		}
		t.Python, t.PythonVersion = py, v
	}
	if err := os.RemoveAll(venv); err != nil {
		return err
	}
	fmt.Fprintf(w, "setup: creating the Python environment %s\n", venv)
	if _, err := runCmd(ctx, "", t.Python, "-m", "venv", venv); err != nil {
		return fmt.Errorf("%s -m venv %s failed: %v; install Python's venv module (on Debian and Ubuntu: `apt-get install python3-venv`)", t.Python, venv, err)
	}
	return nil
}

// mlxInfo is where the pip MLX of an environment keeps its parts.
type mlxInfo struct {
	Versions map[string]string `json:"versions"` // distribution name → version
	Bad      []string          `json:"bad"`      // files whose size differs from pip's record
	Dir      string            `json:"dir"`      // the mlx package directory
	LibMLX   string            `json:"-"`
	CMakeDir string            `json:"-"`
}

// The interpreter reports the installed versions of the distributions named
// in its two comma-separated arguments, every recorded file of the first
// ones whose size differs from pip's record (what an interrupted install
// leaves), and where the mlx package is.
const inspectScript = `
import importlib.metadata as md, importlib.util, json, os, sys
verify = sys.argv[1].split(",")
out = {"versions": {}, "bad": [], "dir": ""}
for name in verify + sys.argv[2].split(","):
    try:
        d = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    out["versions"][name] = d.version
    if name not in verify:
        continue
    for f in d.files or []:
        if f.size is None:
            continue
        p = str(d.locate_file(f))
        try:
            if os.path.getsize(p) != f.size:
                out["bad"].append(p)
        except OSError:
            out["bad"].append(p)
spec = importlib.util.find_spec("mlx")
if spec is not None and spec.submodule_search_locations:
    out["dir"] = list(spec.submodule_search_locations)[0]
print(json.dumps(out))
`

// inspectMLX asks the interpreter py about the MLX of its environment:
// the versions of mlx and of every back-end package, and whether the files
// of mlx and of back-end b are whole.
func inspectMLX(ctx context.Context, py string, b backend) (*mlxInfo, error) {
	var others []string
	for _, p := range backendPackages {
		if p != b.Package {
			others = append(others, p)
		}
	}
	out, err := runCmd(ctx, "", py, "-I", "-c", inspectScript, "mlx,"+b.Package, strings.Join(others, ","))
	if err != nil {
		return nil, err
	}
	var info mlxInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return nil, fmt.Errorf("reading what %s reports about MLX: %v", py, err)
	}
	if info.Dir != "" {
		lib := "libmlx.so"
		if runtime.GOOS == "darwin" {
			lib = "libmlx.dylib"
		}
		info.LibMLX = filepath.Join(info.Dir, "lib", lib)
		info.CMakeDir = filepath.Join(info.Dir, "share", "cmake", "MLX")
	}
	return &info, nil
}

// problem says what is wrong with the environment's MLX, "" when nothing.
func (info *mlxInfo) problem(b backend) string {
	for _, name := range []string{"mlx", b.Package} {
		if v := info.Versions[name]; v != mlx.PinnedVersion {
			if v == "" {
				return name + " is not installed"
			}
			return fmt.Sprintf("%s is %s, not %s", name, v, mlx.PinnedVersion)
		}
	}
	if len(info.Bad) > 0 {
		return fmt.Sprintf("%d files differ from what pip installed (%s)", len(info.Bad), info.Bad[0])
	}
	for _, p := range []string{info.LibMLX, filepath.Join(info.CMakeDir, "MLXConfig.cmake")} {
		if _, err := os.Stat(p); err != nil {
			return p + " is missing"
		}
	}
	return ""
}

// otherBackends returns the back-end packages installed besides b's.
func (info *mlxInfo) otherBackends(b backend) []string {
	var out []string
	for _, p := range backendPackages {
		if p != b.Package && info.Versions[p] != "" {
			out = append(out, p+" "+info.Versions[p])
		}
	}
	return out
}

// ensureMLX installs the pinned MLX on back-end b into the environment venv
// unless it is there intact, and returns where its parts are. An
// environment this command owns that holds another back-end is made anew;
// one the user named is left alone.
func ensureMLX(ctx context.Context, t *tools, venv string, owned bool, b backend, w io.Writer) (*mlxInfo, error) {
	py := filepath.Join(venv, "bin", "python")
	info, err := inspectMLX(ctx, py, b)
	if err != nil {
		return nil, err
	}
	if others := info.otherBackends(b); len(others) > 0 {
		if !owned {
			return nil, fmt.Errorf("the Python environment %s holds %s, not %s: uninstall it there or choose another -venv", venv, strings.Join(others, ", "), b.Package)
		}
		fmt.Fprintf(w, "setup: the Python environment holds %s; making it anew for %s\n", strings.Join(others, ", "), b.Package)
		if err := os.RemoveAll(venv); err != nil {
			return nil, err
		}
		if err := ensureVenv(ctx, t, venv, owned, w); err != nil {
			return nil, err
		}
		if info, err = inspectMLX(ctx, py, b); err != nil {
			return nil, err
		}
	}
	p := info.problem(b)
	if p == "" {
		fmt.Fprintf(w, "setup: %s already installed in %s\n", strings.Join(b.requirements(), " "), venv)
		return info, nil
	}
	args := []string{"-I", "-m", "pip", "install", "--disable-pip-version-check", "-q"}
	if info.Versions["mlx"] == mlx.PinnedVersion && info.Versions[b.Package] == mlx.PinnedVersion {
		// The right versions with damaged files: an interrupted install.
		args = append(args, "--force-reinstall", "--no-deps")
	}
	args = append(args, b.requirements()...)
	fmt.Fprintf(w, "setup: installing %s with pip (%s)\n", strings.Join(b.requirements(), " "), p)
	if _, err := runCmd(ctx, "", py, args...); err != nil {
		return nil, fmt.Errorf("pip could not install %s: %v; check that this OS and Python have a wheel (macOS 14+ on Apple silicon, or Linux on x86-64/arm64) and that pip can reach its index", strings.Join(b.requirements(), " "), err)
	}
	if info, err = inspectMLX(ctx, py, b); err != nil {
		return nil, err
	}
	if p := info.problem(b); p != "" {
		return nil, fmt.Errorf("after pip install, %s in %s", p, venv)
	}
	return info, nil
}

// compile writes the C ABI sources into l.Sources() and builds them in a
// fresh l.Build() against the MLX CMake package in cmakeDir. It returns the
// path of the built library, inside the build tree.
func compile(ctx context.Context, t *tools, l mlxcache.Layout, cmakeDir string, jobs int) (string, error) {
	// A build tree left by an interrupted run may hold half-written
	// objects with fresh timestamps: start from nothing.
	for _, d := range []string{l.Sources(), l.Build()} {
		if err := os.RemoveAll(d); err != nil {
			return "", err
		}
	}
	if err := writeFS(l.Sources(), mlx.CAPISources()); err != nil {
		return "", err
	}
	out := filepath.Join(l.Build(), "out")
	if _, err := runCmd(ctx, "", t.CMake, "-S", l.Sources(), "-B", l.Build(),
		"-DMLX_DIR="+cmakeDir,
		"-DCMAKE_BUILD_TYPE=Release",
		"-DCMAKE_CXX_COMPILER="+t.CXX,
		"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY="+out); err != nil {
		return "", fmt.Errorf("cmake could not configure the C ABI library: %v", err)
	}
	if jobs < 1 {
		jobs = 1
	}
	if _, err := runCmd(ctx, "", t.CMake, "--build", l.Build(), "-j", fmt.Sprint(jobs)); err != nil {
		return "", fmt.Errorf("the C ABI library did not compile: %v", err)
	}
	lib := filepath.Join(out, mlxcache.LibraryName())
	if _, err := os.Stat(lib); err != nil {
		return "", fmt.Errorf("cmake built no %s: %v", lib, err)
	}
	return lib, nil
}

// writeFS copies every file of fsys under dir.
func writeFS(dir string, fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(path))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// runCmd runs a command and returns its standard output. A failure carries
// the command's last lines of output.
func runCmd(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %v%s", filepath.Base(name), err, lastLines(stdout.String()+stderr.String(), 15))
	}
	return stdout.Bytes(), nil
}

// lastLines returns the last n non-empty lines of s, indented on lines of
// their own, or "" when there are none.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n    " + strings.Join(lines, "\n    ")
}
