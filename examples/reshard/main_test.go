package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

func TestEveryRanksShardLoadsInKimiloadUnderTheLauncher(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not loadable: %v", err)
	}
	dir := t.TempDir()
	spec := ckptgen.KimiK25().Scale(1.0 / 16)
	spec.Layers, spec.Experts, spec.Files = 3, 8, 2
	_, err := ckptgen.Write(context.Background(), filepath.Join(dir, "full"), spec, &ckptgen.Options{Seed: 5})
	require.NoError(t, err)

	var out, errb bytes.Buffer
	code := run([]string{"--model", filepath.Join(dir, "full"), "--world", "2", "--out", filepath.Join(dir, "rank{rank}"), "--quiet"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, out.String(), "rank 0/2:")
	assert.Contains(t, out.String(), "rank 1/2:")
	assert.FileExists(t, filepath.Join(dir, "rank1", "config.json"))

	launch, kimiload := testenv.GoBuild(t, "../launch"), testenv.GoBuild(t, "../kimiload")
	b, err := exec.Command(launch, "-n", "2", "--", kimiload,
		"--model", filepath.Join(dir, "rank{rank}"), "--verify").CombinedOutput()
	require.NoError(t, err, "%s", b)
	for _, want := range []string{"[Rank 0/2] verify PASS", "[Rank 1/2] verify PASS", "presharded"} {
		assert.Contains(t, string(b), want)
	}
	// Rank 1's directory refuses rank 0.
	b, err = exec.Command(kimiload, "--model", filepath.Join(dir, "rank1")).CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(b), "holds rank 1 of 2")
}

func TestBadInvocationsExitTwoWithAReason(t *testing.T) {
	for name, args := range map[string][]string{
		"no model":            {"--out", "x"},
		"rank out of range":   {"--model", "m", "--out", "o", "--world", "2", "--rank", "2"},
		"every rank, one dir": {"--model", "m", "--out", "o", "--world", "2"},
		"an unknown flag":     {"--frobnicate"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, 2, run(args, &out, &errb))
			assert.True(t, strings.HasPrefix(errb.String(), "reshard: ") || strings.Contains(errb.String(), "flag provided but not defined"), errb.String())
		})
	}
	var out, errb bytes.Buffer
	assert.Equal(t, 1, run([]string{"--model", t.TempDir(), "--out", t.TempDir(), "--rank", "0"}, &out, &errb), "an empty source")
	assert.Contains(t, errb.String(), "reshard: ")
}
