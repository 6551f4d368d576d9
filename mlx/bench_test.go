package mlx_test

import (
	"testing"

	"github.com/mlxdist/mlxdist/mlx"
)

// The per-call cost of package mlx: a tiny op plus eval, and creating and
// freeing an array. `make bench` prints these next to Python mlx.core's.

func BenchmarkTinyOpEval(b *testing.B) {
	requireMLX(b)
	x := ok(mlx.FromSlice([]float32{1}))(b)
	y := ok(mlx.FromSlice([]float32{2}))(b)
	defer mlx.FreeAll(x, y)
	b.ReportAllocs()
	b.ResetTimer()
	vol0, _ := contextSwitches()
	defer func() { reportSwitches(b, vol0) }()
	for i := 0; i < b.N; i++ {
		z, err := mlx.Add(x, y)
		if err != nil {
			b.Fatal(err)
		}
		if err := mlx.Eval(z); err != nil {
			b.Fatal(err)
		}
		z.Free()
	}
}

// BenchmarkTinyOp builds a tiny op and frees it unevaluated: the cost of
// one lazy op through the binding.
func BenchmarkTinyOp(b *testing.B) {
	requireMLX(b)
	x := ok(mlx.FromSlice([]float32{1}))(b)
	y := ok(mlx.FromSlice([]float32{2}))(b)
	defer mlx.FreeAll(x, y)
	b.ReportAllocs()
	b.ResetTimer()
	vol0, _ := contextSwitches()
	defer func() { reportSwitches(b, vol0) }()
	for i := 0; i < b.N; i++ {
		z, err := mlx.Add(x, y)
		if err != nil {
			b.Fatal(err)
		}
		z.Free()
	}
}

func BenchmarkCreateFree(b *testing.B) {
	requireMLX(b)
	data := []float32{1}
	b.ReportAllocs()
	b.ResetTimer()
	vol0, _ := contextSwitches()
	defer func() { reportSwitches(b, vol0) }()
	for i := 0; i < b.N; i++ {
		a, err := mlx.FromSlice(data)
		if err != nil {
			b.Fatal(err)
		}
		a.Free()
	}
}

// BenchmarkDispatch is the bare cost of one round trip to the MLX thread.
func BenchmarkDispatch(b *testing.B) {
	requireMLX(b)
	b.ReportAllocs()
	vol0, _ := contextSwitches()
	defer func() { reportSwitches(b, vol0) }()
	for i := 0; i < b.N; i++ {
		if _, err := mlx.ActiveMemory(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTinyOpEvalDo is BenchmarkTinyOpEval in one trip per iteration.
func BenchmarkTinyOpEvalDo(b *testing.B) {
	requireMLX(b)
	x := ok(mlx.FromSlice([]float32{1}))(b)
	y := ok(mlx.FromSlice([]float32{2}))(b)
	defer mlx.FreeAll(x, y)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := mlx.Do(func() error {
			z, err := mlx.Add(x, y)
			if err != nil {
				return err
			}
			defer z.Free()
			return mlx.Eval(z)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreateFreeDo is BenchmarkCreateFree with 100 arrays per trip.
func BenchmarkCreateFreeDo(b *testing.B) {
	requireMLX(b)
	data := []float32{1}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		err := mlx.Do(func() error {
			for j := 0; j < 100; j++ {
				a, err := mlx.FromSlice(data)
				if err != nil {
					return err
				}
				a.Free()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
