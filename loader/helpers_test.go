package loader

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
)

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	testenv.Unavailable(t, format, args...)
}

// newGuard is a guard on MLX's active memory with the given physical size
// and headroom.
func newGuard(t testing.TB, physical, headroom uint64) *memguard.Guard {
	t.Helper()
	g, err := memguard.New(memguard.WithPhysical(physical), memguard.WithHeadroom(headroom),
		memguard.WithUsed("active", mlx.ActiveMemory))
	require.NoError(t, err)
	return g
}
