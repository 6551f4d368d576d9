// Command mlxinfo shows which MLX this machine runs from Go: the version,
// where the C ABI library came from, the devices, a few ops and the memory
// figures. It is the quickest check that the mlx package works here.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/mlx"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `usage: mlxinfo

Prints the MLX version, the C ABI library in use, the devices, the result of
a small matmul and a 4-bit quantized matmul, and MLX's memory figures.

Environment:
  MLX_C_LIBRARY   path of the libmlxc to load instead of searching

Example:
  go run ./examples/mlxinfo
`)
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mlxinfo:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := mlx.Load(); err != nil {
		return err
	}
	v, err := mlx.Version()
	if err != nil {
		return err
	}
	abi, _ := mlx.LoadedABI()
	d, err := mlx.AvailableDevices()
	if err != nil {
		return err
	}
	fmt.Printf("MLX %s (%s) from %s\n", v, abi, mlx.Path())
	fmt.Printf("devices: cpu, %d gpu (%s)\n", d.GPUs, d.Backend())

	a, err := mlx.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		return err
	}
	defer a.Free()
	at, err := mlx.Transpose(a)
	if err != nil {
		return err
	}
	defer at.Free()
	c, err := mlx.Matmul(a, at)
	if err != nil {
		return err
	}
	defer c.Free()
	cv, err := mlx.ToSlice[float32](c)
	if err != nil {
		return err
	}
	fmt.Printf("[[1 2 3] [4 5 6]] @ its transpose = %v\n", cv)

	_, err = mlx.Matmul(a, a)
	var me *mlx.Error
	if !errors.As(err, &me) {
		return fmt.Errorf("a shape error came back as %v", err)
	}
	fmt.Printf("a bad matmul is a Go error, not an exit: %v\n", err)

	w := make([]float32, 8*64)
	for i := range w {
		w[i] = float32(i%17) / 17
	}
	wa, err := mlx.FromSlice(w, 8, 64)
	if err != nil {
		return err
	}
	defer wa.Free()
	q := mlx.Quantization{GroupSize: 64, Bits: 4}
	wq, s, b, err := mlx.Quantize(wa, q)
	if err != nil {
		return err
	}
	defer mlx.FreeAll(wq, s, b)
	x, err := mlx.FromSlice(make([]float32, 64), 1, 64)
	if err != nil {
		return err
	}
	defer x.Free()
	y, err := mlx.QuantizedMatmul(x, wq, s, b, true, q)
	if err != nil {
		return err
	}
	defer y.Free()
	if err := mlx.Eval(y); err != nil {
		return err
	}
	fmt.Printf("4-bit quantized matmul: weights %v packed to %v uint32 + scales %v\n", wa.Shape(), wq.Shape(), s.Shape())

	m, err := mlx.Memory()
	if err != nil {
		return err
	}
	lim, err := mlx.MemoryLimit()
	if err != nil {
		return err
	}
	fmt.Printf("memory: active %s, peak %s, cache %s, limit %s\n",
		units.FormatGB(m.Active), units.FormatGB(m.Peak), units.FormatGB(m.Cache), units.FormatGB(lim))
	return nil
}
