package mlx

import "fmt"

// LoadSafetensors loads every tensor of a safetensors file with MLX's own
// loader, lazily: each array reads its bytes when evaluated (MLX preads the
// whole tensor, on the CPU stream). It returns the arrays by name and the
// file's metadata. Package safetensors is the project's own reader; this is
// here for interoperability checks against MLX.
func LoadSafetensors(path string) (map[string]*Array, map[string]string, error) {
	arrays := map[string]*Array{}
	meta := map[string]string{}
	err := doErr(func() error {
		s, err := streamLocked(CPU)
		if err != nil {
			return err
		}
		m := new([2]uintptr)
		m[0] = mlx_map_string_to_array_new()
		m[1] = mlx_map_string_to_string_new()
		defer func() { mlx_map_string_to_array_free(m[0]) }()
		defer func() { mlx_map_string_to_string_free(m[1]) }()
		if err := check("mlx_load_safetensors", mlx_load_safetensors(&m[0], &m[1], path, s)); err != nil {
			return fmt.Errorf("%w (file %s)", err, path)
		}
		it := mlx_map_string_to_array_iterator_new(m[0])
		defer mlx_map_string_to_array_iterator_free(it)
		kv := new([2]uintptr) // key, value
		for {
			kv[1] = 0
			rc := mlx_map_string_to_array_iterator_next(&kv[0], &kv[1], it)
			if rc == 2 {
				break
			}
			if err := check("mlx_map_string_to_array_iterator_next", rc); err != nil {
				for _, a := range arrays {
					mlx_array_free(a.r.h)
					a.r.freed.Store(true)
				}
				return err
			}
			arrays[goString(kv[0])] = newArray(kv[1])
		}
		sit := mlx_map_string_to_string_iterator_new(m[1])
		defer mlx_map_string_to_string_iterator_free(sit)
		for {
			rc := mlx_map_string_to_string_iterator_next(&kv[0], &kv[1], sit)
			if rc == 2 {
				break
			}
			if err := check("mlx_map_string_to_string_iterator_next", rc); err != nil {
				return err
			}
			meta[goString(kv[0])] = goString(kv[1])
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return arrays, meta, nil
}

// SaveSafetensors writes the arrays (evaluating them) and metadata to path
// with MLX's own writer.
func SaveSafetensors(path string, arrays map[string]*Array, metadata map[string]string) error {
	return doErr(func() error {
		ma := mlx_map_string_to_array_new()
		defer mlx_map_string_to_array_free(ma)
		ms := mlx_map_string_to_string_new()
		defer mlx_map_string_to_string_free(ms)
		for name, a := range arrays {
			h, err := a.handle()
			if err != nil {
				return fmt.Errorf("array %q: %w", name, err)
			}
			if err := check("mlx_map_string_to_array_insert", mlx_map_string_to_array_insert(ma, name, h)); err != nil {
				return err
			}
		}
		for k, v := range metadata {
			if err := check("mlx_map_string_to_string_insert", mlx_map_string_to_string_insert(ms, k, v)); err != nil {
				return err
			}
		}
		if err := check("mlx_save_safetensors", mlx_save_safetensors(path, ma, ms)); err != nil {
			return fmt.Errorf("%w (file %s)", err, path)
		}
		return nil
	})
}
