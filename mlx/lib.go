package mlx

import (
	"errors"
	"fmt"
	"github.com/mlxdist/mlxdist/internal/oneline"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// EnvLibrary names the environment variable that, when set, is the path of
// the C ABI library to load before any other place is tried.
const EnvLibrary = "MLX_C_LIBRARY"

// ErrNotLoaded is returned (wrapped in a *LoadError) when no C ABI library
// could be loaded.
var ErrNotLoaded = errors.New("mlx: no MLX C library could be loaded")

// LoadError says why MLX could not be loaded: every place tried and what
// went wrong there, and the missing symbols of a library that was found.
type LoadError struct {
	Tried   []Attempt // every candidate, in the order tried
	Missing []string  // required symbols absent from the library that opened
}

// Attempt is one place Load looked for the C ABI library.
type Attempt struct {
	Path string
	Err  error
}

func (e *LoadError) Error() string {
	var b strings.Builder
	if len(e.Missing) > 0 {
		fmt.Fprintf(&b, "mlx: %s lacks %d required symbols (%s)", e.Tried[len(e.Tried)-1].Path, len(e.Missing), oneline.List(e.Missing, 3))
		b.WriteString("; rebuild it against this MLX with `" + SetupCommand() + "` or point MLX_C_LIBRARY at a complete libmlxc")
		return b.String()
	}
	b.WriteString("mlx: no MLX C library could be loaded (tried ")
	for i, a := range e.Tried {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", a.Path, a.Err)
	}
	b.WriteString("); run " + setupAdvice() + " once (installs pip MLX " + PinnedVersion + " and builds the C ABI library in the user cache), install mlx-c (`brew install mlx-c` on macOS), or set MLX_C_LIBRARY to a libmlxc")
	return b.String()
}

func (e *LoadError) Unwrap() error { return ErrNotLoaded }

// ABI tells which generation of mlx-c's API the loaded library speaks. They
// differ in the distributed functions only.
type ABI int

const (
	// ABIMain is mlx-c's main branch (and this project's library):
	// mlx_distributed_init returns an int and writes the group through a
	// pointer, and groups are freed with mlx_distributed_group_free.
	ABIMain ABI = iota
	// ABIv06 is mlx-c v0.6.0: mlx_distributed_init and
	// mlx_distributed_group_split return the group, which is never freed.
	ABIv06
)

func (a ABI) String() string {
	if a == ABIv06 {
		return "mlx-c v0.6"
	}
	return "mlx-c main"
}

// library is the loaded C ABI library; nil until Load succeeds.
type library struct {
	path   string
	handle uintptr
	abi    ABI
}

var (
	loadOnce sync.Once
	lib      *library
	loadErr  error
)

// Load finds, opens and initialises the MLX C ABI library, once per
// process; later calls return the first call's result. Every other function
// of this package calls it, so calling it explicitly is only needed to see
// the error early or to learn where MLX came from (see Path).
//
// Candidates, in order: $MLX_C_LIBRARY; the library `make setup` builds
// in a checkout (build/lib under this module's root, found from the working
// directory and from the executable's directory); the library the setup
// command (SetupCommand) installed in CacheDir, opened only when that
// installation is complete and unchanged; an official libmlxc beside the
// executable, in the Homebrew prefix, in /usr/local/lib, and by the dynamic
// loader's own search.
func Load() error {
	loadOnce.Do(func() {
		lib, loadErr = load(candidates())
		if loadErr == nil {
			loadErr = startWorker()
		}
	})
	return loadErr
}

// Path returns the file the C ABI library was loaded from, or "" before a
// successful Load.
func Path() string {
	if Load() != nil {
		return ""
	}
	return lib.path
}

// LoadedABI tells which mlx-c API generation the loaded library speaks.
func LoadedABI() (ABI, error) {
	if err := Load(); err != nil {
		return 0, err
	}
	return lib.abi, nil
}

func soName(base string) string {
	if runtime.GOOS == "darwin" {
		return base + ".dylib"
	}
	return base + ".so"
}

func candidates() []string {
	var out []string
	add := func(p string) {
		for _, q := range out {
			if q == p {
				return
			}
		}
		out = append(out, p)
	}
	if p := os.Getenv(EnvLibrary); p != "" {
		// An explicit choice is the only candidate: falling back to another
		// library silently would hide a mistake in the variable.
		return []string{p}
	}
	name := soName("libmlxc")
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	exeDir := ""
	if exe, err := os.Executable(); err == nil {
		exeDir = filepath.Dir(exe)
		starts = append(starts, exeDir)
	}
	for _, s := range starts {
		if root := moduleRoot(s); root != "" {
			add(filepath.Join(root, "build", "lib", name))
		}
	}
	if p := cachedLibrary(); p != "" {
		add(p)
	}
	if exeDir != "" {
		add(filepath.Join(exeDir, name))
	}
	if runtime.GOOS == "darwin" {
		if prefix := os.Getenv("HOMEBREW_PREFIX"); prefix != "" {
			add(filepath.Join(prefix, "lib", name))
		}
		add(filepath.Join("/opt/homebrew/lib", name))
	}
	add(filepath.Join("/usr/local/lib", name))
	add(name) // the dynamic loader's own search path
	return out
}

// moduleRoot walks up from dir to the directory whose go.mod declares this
// module, so that binaries and tests run anywhere inside a checkout find the
// library `make setup` built.
func moduleRoot(dir string) string {
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/mlxdist/mlxdist") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func load(paths []string) (*library, error) {
	le := &LoadError{}
	for _, p := range paths {
		if err := checkCandidate(p); err != nil {
			le.Tried = append(le.Tried, Attempt{p, err})
			continue
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			le.Tried = append(le.Tried, Attempt{p, err})
			continue
		}
		l := &library{path: p, handle: h}
		var table symbolTable
		missing := bindSymbols(h, &table)
		if len(missing) > 0 {
			le.Tried = append(le.Tried, Attempt{p, fmt.Errorf("missing %d symbols (%s)", len(missing), oneline.List(missing, 3))})
			le.Missing = missing
			_ = purego.Dlclose(h)
			return nil, le
		}
		sym = table
		if sym.mlx_distributed_group_free == 0 {
			l.abi = ABIv06
		}
		return l, nil
	}
	return nil, le
}
