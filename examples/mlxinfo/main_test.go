package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

func TestMLXInfoReportsMLXAndAMissingLibraryIsAOneLineError(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not loadable: %v", err)
	}
	bin := testenv.GoBuild(t, ".")

	out, err := exec.Command(bin).CombinedOutput()
	require.NoError(t, err, "%s", out)
	v, err := mlx.Version()
	require.NoError(t, err)
	assert.Contains(t, string(out), "MLX "+v)
	assert.Contains(t, string(out), "@ its transpose = [14 32 32 77]")
	assert.Contains(t, string(out), "a bad matmul is a Go error, not an exit")

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "MLX_C_LIBRARY="+filepath.Join(t.TempDir(), "libmlxc.so"))
	out, err = cmd.CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(out), "mlxinfo: mlx: no MLX C library could be loaded")
	assert.Contains(t, string(out), "go run "+mlx.SetupPackage)
}
