//go:build unix

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/mlxcache"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

// The program a new user of the module writes: a matmul, then an all-sum
// over the ranks the launcher started. %s is replaced by the two matrices.
const importerMain = `package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/mlx"
)

var a, b = %s, %s

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "importer:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	x, err := mlx.FromSlice(a, 2, 3)
	if err != nil {
		return err
	}
	defer x.Free()
	y, err := mlx.FromSlice(b, 3, 2)
	if err != nil {
		return err
	}
	defer y.Free()
	p, err := mlx.Matmul(x, y)
	if err != nil {
		return err
	}
	defer p.Free()
	v, err := mlx.ToSlice[float32](p)
	if err != nil {
		return err
	}
	g, err := jaccl.Init(ctx, jaccl.Options{Strict: true})
	if err != nil {
		return err
	}
	defer g.Close()
	s, err := jaccl.AllSumSlice(ctx, g, []float32{float32(g.Rank() + 1)})
	if err != nil {
		return err
	}
	out, _ := json.Marshal(map[string]any{"library": mlx.Path(), "matmul": v, "all_sum": s[0], "rank": g.Rank(), "size": g.Size()})
	fmt.Println(string(out))
	return nil
}
`

// importer is a throw-away module outside the repository that requires
// this one through a replace, as a user's module requires a release.
type importer struct {
	t     *testing.T
	dir   string
	cache string
	env   []string
}

func newImporter(t *testing.T, a, b []float32) *importer {
	t.Helper()
	root := testenv.RepoRoot()
	require.NotEmpty(t, root)
	if _, err := exec.LookPath("go"); err != nil {
		testenv.Unavailable(t, "no go command: %v", err)
	}
	im := &importer{t: t, dir: t.TempDir(), cache: t.TempDir()}
	gomod := fmt.Sprintf("module example.com/importer\n\ngo 1.25.0\n\nrequire github.com/mlxdist/mlxdist v0.0.0-00010101000000-000000000000\n\nreplace github.com/mlxdist/mlxdist => %s\n", readOnlyModule(t, root))
	require.NoError(t, os.WriteFile(filepath.Join(im.dir, "go.mod"), []byte(gomod), 0o644))
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(im.dir, "go.sum"), sum, 0o644))
	src := fmt.Sprintf(importerMain, goLiteral(a), goLiteral(b))
	require.NoError(t, os.WriteFile(filepath.Join(im.dir, "main.go"), []byte(src), 0o644))

	// Nothing of the checkout's set-up may help: no MLX_C_LIBRARY, and the
	// module's directory is outside the repository, so its build/ is not
	// found either. pip keeps its own cache; the installation goes to a
	// scratch directory.
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case mlx.EnvLibrary, mlx.EnvCacheDir, "CGO_ENABLED", "GOFLAGS", "MLXDIST_PYTHON":
			continue
		}
		im.env = append(im.env, kv)
	}
	// -trimpath keeps the module's directory out of the build cache's keys,
	// so the fresh copy of the module each run compiles from the cache.
	im.env = append(im.env, mlx.EnvCacheDir+"="+im.cache, "CGO_ENABLED=0", "GOFLAGS=-mod=mod -trimpath")
	im.run("go", "mod", "tidy")
	return im
}

// readOnlyModule copies the module's source files (what git tracks, and new
// files it does not ignore: no build/, no .venv) into a directory made
// read-only like the module cache's copy, and returns it.
func readOnlyModule(t *testing.T, root string) string {
	t.Helper()
	gitTool, err := exec.LookPath("git")
	if err != nil {
		testenv.Unavailable(t, "no git to list the module's files: %v", err)
	}
	cmd := exec.Command(gitTool, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "mlxdist")
	var dirs []string
	for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or the .venv link
		}
		b, err := os.ReadFile(src)
		require.NoError(t, err)
		target := filepath.Join(dst, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(target), 0o755))
		require.NoError(t, os.WriteFile(target, b, 0o444))
	}
	require.NoError(t, filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return err
	}))
	for _, d := range dirs {
		require.NoError(t, os.Chmod(d, 0o555))
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			os.Chmod(d, 0o755) // so that the temporary directory can be removed
		}
	})
	require.NoFileExists(t, filepath.Join(dst, "build", "lib", mlxcache.LibraryName()))
	return dst
}

func goLiteral(xs []float32) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return "[]float32{" + strings.Join(s, ", ") + "}"
}

func (im *importer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = im.dir
	cmd.Env = im.env
	return cmd
}

// run runs a command in the module and returns its combined output,
// failing the test when it fails.
func (im *importer) run(name string, args ...string) string {
	im.t.Helper()
	start := time.Now()
	out, err := im.command(name, args...).CombinedOutput()
	require.NoError(im.t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	im.t.Logf("%.1fs  %s %s", time.Since(start).Seconds(), filepath.Base(name), strings.Join(args, " "))
	return string(out)
}

// fails runs a command that must fail and returns its combined output.
func (im *importer) fails(name string, args ...string) string {
	im.t.Helper()
	out, err := im.command(name, args...).CombinedOutput()
	require.Error(im.t, err, "%s %s should fail:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

func (im *importer) library() string {
	return mlxcache.Layout{Dir: filepath.Join(im.cache, mlx.PinnedVersion)}.Library()
}

type rankReport struct {
	Library string    `json:"library"`
	Matmul  []float32 `json:"matmul"`
	AllSum  float32   `json:"all_sum"`
	Rank    int       `json:"rank"`
	Size    int       `json:"size"`
}

// launch runs the built program as n local ranks through the module's
// launcher and returns each rank's report.
func (im *importer) launch(prog string, n int) map[int]rankReport {
	im.t.Helper()
	out := im.run("go", "run", "github.com/mlxdist/mlxdist/examples/launch", "-n", fmt.Sprint(n), "--", prog)
	reports := map[int]rankReport{}
	for _, line := range strings.Split(out, "\n") {
		var r int
		var rest string
		if _, err := fmt.Sscanf(line, "[%d] %s", &r, &rest); err != nil || !strings.HasPrefix(rest, "{") {
			continue
		}
		var rep rankReport
		require.NoError(im.t, json.Unmarshal([]byte(line[strings.Index(line, "{"):]), &rep), line)
		reports[r] = rep
	}
	require.Len(im.t, reports, n, "every rank reports:\n%s", out)
	return reports
}

func matmul(a, b []float32, m, k, n int) []float32 {
	c := make([]float32, m*n)
	for i := range m {
		for j := range n {
			for l := range k {
				c[i*n+j] += a[i*k+l] * b[l*n+j]
			}
		}
	}
	return c
}

func TestAModuleThatImportsMlxdistRunsAMatmulAndAnAllSumAfterOneSetup(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test installs pip MLX into a scratch cache and compiles the C ABI library twice (one to three minutes)")
	}
	if raceEnabled {
		t.Skip("-race: every process this test checks is a CGO_ENABLED=0 build outside the race detector; the plain run covers it")
	}
	a := []float32{1, -2, 3.5, 4, 5, -6}
	b := []float32{0.5, 7, -8, 9, 10, 11.25}
	im := newImporter(t, a, b)
	lib := im.library()

	// The one setup line, as the README gives it.
	out := im.run("go", "run", mlx.SetupPackage)
	assert.Contains(t, out, "setup: installed "+lib)
	assert.Contains(t, out, "package mlx loads it from there; nothing to set")
	first, err := os.Stat(lib)
	require.NoError(t, err)

	out = im.run("go", "run", mlx.SetupPackage)
	assert.Contains(t, out, "setup: up to date")
	assert.NotContains(t, out, "installing")
	assert.NotContains(t, out, "compiling")
	second, err := os.Stat(lib)
	require.NoError(t, err)
	assert.True(t, os.SameFile(first, second) && first.ModTime().Equal(second.ModTime()), "the second run leaves the library as it was")

	prog := filepath.Join(t.TempDir(), "importer")
	im.run("go", "build", "-o", prog, ".")
	const n = 2
	want := matmul(a, b, 2, 3, 2)
	check := func(reports map[int]rankReport) {
		t.Helper()
		for r := range n {
			rep := reports[r]
			assert.Equal(t, lib, rep.Library, "rank %d loads the cache's library", r)
			assert.InDeltaSlice(t, want, rep.Matmul, 1e-5, "rank %d matmul", r)
			assert.Equal(t, float32(n*(n+1)/2), rep.AllSum, "rank %d all-sum of rank+1", r)
			assert.Equal(t, r, rep.Rank)
			assert.Equal(t, n, rep.Size)
		}
	}
	check(im.launch(prog, n))

	// A damaged pip install: the libmlx the library links is cut short.
	// The program refuses the installation, and the setup repairs it.
	info := im.run(filepath.Join(im.cache, mlx.PinnedVersion, "venv", "bin", "python"), "-I", "-c",
		"import mlx, os; print(os.path.join(list(mlx.__path__)[0], 'lib'))")
	libmlx := filepath.Join(strings.TrimSpace(info), strings.Replace(mlxcache.LibraryName(), "libmlxc", "libmlx", 1))
	require.NoError(t, os.Truncate(libmlx, 4096))
	out = im.fails(prog)
	assert.Contains(t, out, "incomplete MLX set-up")
	assert.Contains(t, out, "the manifest records")
	assert.Contains(t, out, "go run "+mlx.SetupPackage)

	// A setup killed while it compiles leaves no manifest: the program
	// refuses the half-built installation instead of loading it.
	setupBin := filepath.Join(t.TempDir(), "setup")
	im.run("go", "build", "-o", setupBin, mlx.SetupPackage)
	killed := killWhenCompiling(t, im.command(setupBin))
	assert.Contains(t, killed, "installing "+strings.Join(backendFor(t).requirements(), " ")+" with pip (")
	assert.NoFileExists(t, mlxcache.Layout{Dir: filepath.Join(im.cache, mlx.PinnedVersion)}.Manifest())
	out = im.fails(prog)
	assert.Contains(t, out, "no manifest setup.json: the set-up did not finish")

	out = im.run(setupBin)
	assert.Contains(t, out, "rebuilding: no manifest")
	assert.Contains(t, out, "already installed", "the repaired pip install is kept")
	assert.Contains(t, out, "setup: installed "+lib)
	check(im.launch(prog, n))
}

func backendFor(t *testing.T) backend {
	t.Helper()
	b, err := resolveBackend("auto", runtime.GOOS)
	require.NoError(t, err)
	return b
}

// killWhenCompiling starts the setup command in a process group of its
// own, kills the whole group (CMake and the compiler with it) as soon as
// it says it is compiling, and returns what it printed until then.
func killWhenCompiling(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		done <- err
	}()
	var seen bytes.Buffer
	sc := bufio.NewScanner(pr)
	compiling := false
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "setup: compiling the C ABI library") {
			compiling = true
			require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
			break
		}
	}
	go io.Copy(io.Discard, pr)
	err := <-done
	require.True(t, compiling, "the setup never reached the compile step:\n%s", seen.String())
	require.Error(t, err, "the setup was killed")
	return seen.String()
}
