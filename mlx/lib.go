package mlx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"

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
		fmt.Fprintf(&b, "mlx: %s lacks required symbols %s", e.Tried[len(e.Tried)-1].Path, strings.Join(e.Missing, ", "))
		b.WriteString("; rebuild it against this MLX with `make setup` or point MLX_C_LIBRARY at a complete libmlxc")
		return b.String()
	}
	b.WriteString("mlx: no MLX C library could be loaded; tried:")
	for _, a := range e.Tried {
		fmt.Fprintf(&b, "\n  %s: %v", a.Path, a.Err)
	}
	b.WriteString("\nrun `make setup` (builds the C ABI library against pip's MLX), install mlx-c (`brew install mlx-c` on macOS), or set MLX_C_LIBRARY to a libmlxc")
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

// symbols holds the address of every C function package mlx calls. A field
// tagged `optional` may be zero; any other missing symbol fails Load.
type symbols struct {
	setErrorHandler uintptr `sym:"mlx_set_error_handler"`

	stringNew  uintptr `sym:"mlx_string_new"`
	stringData uintptr `sym:"mlx_string_data"`
	stringFree uintptr `sym:"mlx_string_free"`
	version    uintptr `sym:"mlx_version"`

	arrayFree           uintptr `sym:"mlx_array_free"`
	arrayToString       uintptr `sym:"mlx_array_tostring"`
	arrayNewData        uintptr `sym:"mlx_array_new_data"`
	arrayNewManaged     uintptr `sym:"mlx_array_new_data_managed_payload" optional:"true"`
	arraySize           uintptr `sym:"mlx_array_size"`
	arrayNbytes         uintptr `sym:"mlx_array_nbytes"`
	arrayNdim           uintptr `sym:"mlx_array_ndim"`
	arrayShape          uintptr `sym:"mlx_array_shape"`
	arrayDtype          uintptr `sym:"mlx_array_dtype"`
	arrayEval           uintptr `sym:"mlx_array_eval"`
	arrayDataUint8      uintptr `sym:"mlx_array_data_uint8"`
	arrayIsRowContig    uintptr `sym:"_mlx_array_is_row_contiguous" optional:"true"`
	vectorArrayNew      uintptr `sym:"mlx_vector_array_new"`
	vectorArrayFree     uintptr `sym:"mlx_vector_array_free"`
	vectorArrayNewData  uintptr `sym:"mlx_vector_array_new_data"`
	vectorArraySize     uintptr `sym:"mlx_vector_array_size"`
	vectorArrayGet      uintptr `sym:"mlx_vector_array_get"`
	mapArrayNew         uintptr `sym:"mlx_map_string_to_array_new"`
	mapArrayFree        uintptr `sym:"mlx_map_string_to_array_free"`
	mapArrayInsert      uintptr `sym:"mlx_map_string_to_array_insert"`
	mapArrayIterNew     uintptr `sym:"mlx_map_string_to_array_iterator_new"`
	mapArrayIterFree    uintptr `sym:"mlx_map_string_to_array_iterator_free"`
	mapArrayIterNext    uintptr `sym:"mlx_map_string_to_array_iterator_next"`
	mapStringNew        uintptr `sym:"mlx_map_string_to_string_new"`
	mapStringFree       uintptr `sym:"mlx_map_string_to_string_free"`
	mapStringInsert     uintptr `sym:"mlx_map_string_to_string_insert"`
	mapStringIterNew    uintptr `sym:"mlx_map_string_to_string_iterator_new"`
	mapStringIterFree   uintptr `sym:"mlx_map_string_to_string_iterator_free"`
	mapStringIterNext   uintptr `sym:"mlx_map_string_to_string_iterator_next"`
	deviceNewType       uintptr `sym:"mlx_device_new_type"`
	deviceFree          uintptr `sym:"mlx_device_free"`
	getDefaultDevice    uintptr `sym:"mlx_get_default_device"`
	setDefaultDevice    uintptr `sym:"mlx_set_default_device"`
	deviceGetType       uintptr `sym:"mlx_device_get_type"`
	deviceIsAvailable   uintptr `sym:"mlx_device_is_available" optional:"true"`
	deviceCount         uintptr `sym:"mlx_device_count" optional:"true"`
	streamFree          uintptr `sym:"mlx_stream_free"`
	synchronize         uintptr `sym:"mlx_synchronize"`
	defaultCPUStreamNew uintptr `sym:"mlx_default_cpu_stream_new"`
	defaultGPUStreamNew uintptr `sym:"mlx_default_gpu_stream_new"`
	metalIsAvailable    uintptr `sym:"mlx_metal_is_available"`
	cudaIsAvailable     uintptr `sym:"mlx_cuda_is_available" optional:"true"`

	eval      uintptr `sym:"mlx_eval"`
	asyncEval uintptr `sym:"mlx_async_eval"`

	clearCache      uintptr `sym:"mlx_clear_cache"`
	activeMemory    uintptr `sym:"mlx_get_active_memory"`
	cacheMemory     uintptr `sym:"mlx_get_cache_memory"`
	memoryLimit     uintptr `sym:"mlx_get_memory_limit"`
	peakMemory      uintptr `sym:"mlx_get_peak_memory"`
	resetPeakMemory uintptr `sym:"mlx_reset_peak_memory"`
	setCacheLimit   uintptr `sym:"mlx_set_cache_limit"`
	setMemoryLimit  uintptr `sym:"mlx_set_memory_limit"`
	setWiredLimit   uintptr `sym:"mlx_set_wired_limit"`

	slice           uintptr `sym:"mlx_slice"`
	split           uintptr `sym:"mlx_split"`
	splitSections   uintptr `sym:"mlx_split_sections"`
	concatenate     uintptr `sym:"mlx_concatenate_axis"`
	contiguous      uintptr `sym:"mlx_contiguous"`
	reshape         uintptr `sym:"mlx_reshape"`
	transposeAxes   uintptr `sym:"mlx_transpose_axes"`
	astype          uintptr `sym:"mlx_astype"`
	view            uintptr `sym:"mlx_view"`
	matmul          uintptr `sym:"mlx_matmul"`
	add             uintptr `sym:"mlx_add"`
	multiply        uintptr `sym:"mlx_multiply"`
	sumAxes         uintptr `sym:"mlx_sum_axes"`
	quantize        uintptr `sym:"mlx_quantize"`
	dequantize      uintptr `sym:"mlx_dequantize"`
	quantizedMatmul uintptr `sym:"mlx_quantized_matmul"`
	takeAxis        uintptr `sym:"mlx_take_axis"`
	zeros           uintptr `sym:"mlx_zeros"`

	loadSafetensors uintptr `sym:"mlx_load_safetensors"`
	saveSafetensors uintptr `sym:"mlx_save_safetensors"`

	distInit        uintptr `sym:"mlx_distributed_init"`
	distGroupFree   uintptr `sym:"mlx_distributed_group_free" optional:"true"`
	distGroupRank   uintptr `sym:"mlx_distributed_group_rank"`
	distGroupSize   uintptr `sym:"mlx_distributed_group_size"`
	distGroupSplit  uintptr `sym:"mlx_distributed_group_split"`
	distIsAvailable uintptr `sym:"mlx_distributed_is_available"`
	distAllSum      uintptr `sym:"mlx_distributed_all_sum"`
	distAllGather   uintptr `sym:"mlx_distributed_all_gather"`
	distAllMax      uintptr `sym:"mlx_distributed_all_max"`
	distAllMin      uintptr `sym:"mlx_distributed_all_min"`
	distSumScatter  uintptr `sym:"mlx_distributed_sum_scatter"`
	distSend        uintptr `sym:"mlx_distributed_send"`
	distRecv        uintptr `sym:"mlx_distributed_recv"`
}

// library is the loaded C ABI library; nil until Load succeeds.
type library struct {
	path   string
	handle uintptr
	abi    ABI
	sym    symbols
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
// (build/lib under this module's root, found from the working directory and
// from the executable's directory); an official libmlxc beside the
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
		if filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				le.Tried = append(le.Tried, Attempt{p, errors.New("no such file")})
				continue
			}
		}
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			le.Tried = append(le.Tried, Attempt{p, err})
			continue
		}
		l := &library{path: p, handle: h}
		missing := bindSymbols(h, &l.sym)
		if len(missing) > 0 {
			le.Tried = append(le.Tried, Attempt{p, fmt.Errorf("missing symbols %s", strings.Join(missing, ", "))})
			le.Missing = missing
			_ = purego.Dlclose(h)
			return nil, le
		}
		if l.sym.distGroupFree == 0 {
			l.abi = ABIv06
		}
		return l, nil
	}
	return nil, le
}

// bindSymbols fills every uintptr field of s from its `sym` tag and returns
// the required symbols that are missing.
func bindSymbols(h uintptr, s *symbols) []string {
	var missing []string
	v := reflect.ValueOf(s).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("sym")
		addr, err := purego.Dlsym(h, name)
		if err != nil || addr == 0 {
			if f.Tag.Get("optional") != "true" {
				missing = append(missing, name)
			}
			continue
		}
		// The fields are unexported, so set them through their address.
		*(*uintptr)(unsafe.Pointer(v.Field(i).UnsafeAddr())) = addr
	}
	return missing
}
