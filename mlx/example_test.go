package mlx_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/mlxdist/mlxdist/mlx"
)

// The whole of a first program: a matmul of a matrix with its transpose.
// Without MLX on the machine, FromSlice returns a *mlx.LoadError naming
// every place tried and the setup command to run.
func Example() {
	a, err := mlx.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Free()
	at, err := mlx.Transpose(a)
	if err != nil {
		log.Fatal(err)
	}
	defer at.Free()
	c, err := mlx.Matmul(a, at) // lazy: nothing is computed yet
	if err != nil {
		log.Fatal(err) // a shape mismatch is an *mlx.Error naming both shapes
	}
	defer c.Free()
	v, err := mlx.ToSlice[float32](c) // evaluates
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v) // [14 32 32 77]
}

// Load early to tell the user how to get MLX before any work starts.
func ExampleLoad() {
	if err := mlx.Load(); err != nil {
		var le *mlx.LoadError
		if errors.As(err, &le) && len(le.Missing) == 0 {
			log.Fatalf("no MLX here: run `%s` once, or set %s", mlx.SetupCommand(), mlx.EnvLibrary)
		}
		log.Fatal(err)
	}
	v, _ := mlx.Version()
	fmt.Printf("MLX %s from %s\n", v, mlx.Path())
}

// Fill an MLX array's memory in place, as the loader does with the bytes of
// a rank's shard: no Go copy of the data is kept.
func ExampleNewArrayFill() {
	a, err := mlx.NewArrayFill([]int{2, 2}, mlx.Float32, func(dst []byte) error {
		for i := range dst {
			dst[i] = 0 // four float32 zeros; a loader reads file bytes here
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Free()
	fmt.Println(a.Shape())
}

// Run a burst of calls on MLX's thread in one trip: each call inside Do
// costs what a call from C would, instead of a hop between threads.
func ExampleDo() {
	err := mlx.Do(func() error {
		for range 100 {
			a, err := mlx.Scalar[float32](1)
			if err != nil {
				return err
			}
			a.Free()
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// The figures a memory guard needs, in bytes.
func ExampleMemory() {
	m, err := mlx.Memory()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("active %d, peak %d, cache %d\n", m.Active, m.Peak, m.Cache)
	if err := mlx.ClearCache(); err != nil {
		log.Fatal(err)
	}
}
