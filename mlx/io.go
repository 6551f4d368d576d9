package mlx

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"
)

// LoadSafetensors loads every tensor of a safetensors file with MLX's own
// loader, lazily: each array reads its bytes when evaluated (MLX preads the
// whole tensor, on the CPU stream). It returns the arrays by name and the
// file's metadata. Package safetensors is the project's own reader; this is
// here for interoperability checks against MLX.
func LoadSafetensors(path string) (map[string]*Array, map[string]string, error) {
	p := cString(path)
	arrays := map[string]*Array{}
	meta := map[string]string{}
	err := doErr(func() error {
		s, err := streamLocked(CPU)
		if err != nil {
			return err
		}
		m := new([2]uintptr)
		m[0], _, _ = purego.SyscallN(lib.sym.mapArrayNew)
		m[1], _, _ = purego.SyscallN(lib.sym.mapStringNew)
		defer purego.SyscallN(lib.sym.mapArrayFree, m[0])
		defer purego.SyscallN(lib.sym.mapStringFree, m[1])
		rc, _, _ := purego.SyscallN(lib.sym.loadSafetensors, uintptr(unsafe.Pointer(&m[0])), uintptr(unsafe.Pointer(&m[1])),
			uintptr(unsafe.Pointer(&p[0])), s)
		runtime.KeepAlive(m)
		if err := check("mlx_load_safetensors", rc); err != nil {
			return fmt.Errorf("%w (file %s)", err, path)
		}
		it, _, _ := purego.SyscallN(lib.sym.mapArrayIterNew, m[0])
		defer purego.SyscallN(lib.sym.mapArrayIterFree, it)
		for {
			kv := new([2]uintptr) // key, array
			rc, _, _ := purego.SyscallN(lib.sym.mapArrayIterNext, uintptr(unsafe.Pointer(&kv[0])), uintptr(unsafe.Pointer(&kv[1])), it)
			if int32(rc) == 2 {
				break
			}
			if err := check("mlx_map_string_to_array_iterator_next", rc); err != nil {
				for _, a := range arrays {
					purego.SyscallN(lib.sym.arrayFree, a.r.h)
					a.r.freed.Store(true)
				}
				return err
			}
			arrays[goString((*byte)(cPtr(kv[0])))] = newArray(kv[1])
		}
		sit, _, _ := purego.SyscallN(lib.sym.mapStringIterNew, m[1])
		defer purego.SyscallN(lib.sym.mapStringIterFree, sit)
		for {
			kv := new([2]uintptr)
			rc, _, _ := purego.SyscallN(lib.sym.mapStringIterNext, uintptr(unsafe.Pointer(&kv[0])), uintptr(unsafe.Pointer(&kv[1])), sit)
			if int32(rc) == 2 {
				break
			}
			if err := check("mlx_map_string_to_string_iterator_next", rc); err != nil {
				return err
			}
			meta[goString((*byte)(cPtr(kv[0])))] = goString((*byte)(cPtr(kv[1])))
		}
		return nil
	})
	runtime.KeepAlive(p)
	if err != nil {
		return nil, nil, err
	}
	return arrays, meta, nil
}

// SaveSafetensors writes the arrays (evaluating them) and metadata to path
// with MLX's own writer.
func SaveSafetensors(path string, arrays map[string]*Array, metadata map[string]string) error {
	p := cString(path)
	err := doErr(func() error {
		ma, _, _ := purego.SyscallN(lib.sym.mapArrayNew)
		defer purego.SyscallN(lib.sym.mapArrayFree, ma)
		ms, _, _ := purego.SyscallN(lib.sym.mapStringNew)
		defer purego.SyscallN(lib.sym.mapStringFree, ms)
		for name, a := range arrays {
			h, err := a.handle()
			if err != nil {
				return fmt.Errorf("array %q: %w", name, err)
			}
			k := cString(name)
			rc, _, _ := purego.SyscallN(lib.sym.mapArrayInsert, ma, uintptr(unsafe.Pointer(&k[0])), h)
			runtime.KeepAlive(k)
			if err := check("mlx_map_string_to_array_insert", rc); err != nil {
				return err
			}
		}
		for k, v := range metadata {
			ck, cv := cString(k), cString(v)
			rc, _, _ := purego.SyscallN(lib.sym.mapStringInsert, ms, uintptr(unsafe.Pointer(&ck[0])), uintptr(unsafe.Pointer(&cv[0])))
			runtime.KeepAlive(ck)
			runtime.KeepAlive(cv)
			if err := check("mlx_map_string_to_string_insert", rc); err != nil {
				return err
			}
		}
		rc, _, _ := purego.SyscallN(lib.sym.saveSafetensors, uintptr(unsafe.Pointer(&p[0])), ma, ms)
		if err := check("mlx_save_safetensors", rc); err != nil {
			return fmt.Errorf("%w (file %s)", err, path)
		}
		return nil
	})
	runtime.KeepAlive(p)
	return err
}
