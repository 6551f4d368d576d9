//go:build unix

package jaccl

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
)

// The cost Group adds to an evaluated collective, measured on a group of one
// so that no network time hides it: AllSum plus mlx.Eval against AllSum plus
// Group.Eval (the deadline watchdog). Multi-rank figures against Python come
// from bench/allsum.
func BenchmarkGroupEvalOverhead(b *testing.B) {
	requireMLX(b)
	g, err := Init(context.Background(), Options{Backend: Any})
	require.NoError(b, err)
	defer g.Close()
	x, err := mlx.FromSlice([]float32{1})
	require.NoError(b, err)
	defer x.Free()
	ctx := context.Background()
	evals := map[string]func(*mlx.Array) error{
		"mlx.Eval":   func(a *mlx.Array) error { return mlx.Eval(a) },
		"Group.Eval": func(a *mlx.Array) error { return g.Eval(ctx, a) },
	}
	for _, name := range []string{"mlx.Eval", "Group.Eval"} {
		eval := evals[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				y, err := g.AllSum(x)
				if err != nil {
					b.Fatal(err)
				}
				err = eval(y)
				y.Free()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// One trip that builds, evaluates and reads the all-sum, from and into
	// Go memory (the two above take a trip to build and one to evaluate).
	b.Run("AllSumSlice", func(b *testing.B) {
		xs := []float32{1}
		for b.Loop() {
			if _, err := AllSumSlice(ctx, g, xs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
