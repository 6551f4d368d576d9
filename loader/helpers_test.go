package loader

import (
	"regexp"
	"strings"
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
func newGuard(t testing.TB, physical, headroom int64) *memguard.Guard {
	t.Helper()
	g, err := memguard.New(memguard.WithPhysical(physical), memguard.WithHeadroom(headroom),
		memguard.WithUsed("active", mlx.ActiveMemory))
	require.NoError(t, err)
	return g
}

// newTestGuard is a guard for rank programs, which have no testing.T.
func newTestGuard() (*memguard.Guard, error) {
	return memguard.New(memguard.WithPhysical(1<<50), memguard.WithHeadroom(1<<30), memguard.WithUsed("active", mlx.ActiveMemory))
}

func rx(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// lin matches the weight, scales, biases and bias of a linear module whose
// name ends with one of the given module paths, as the built-in rules do.
func lin(modules ...string) *regexp.Regexp {
	return rx(`(?:^|\.)(?:` + strings.Join(modules, "|") + `)\.(?:weight|scales|biases|bias)$`)
}
