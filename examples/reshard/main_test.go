package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
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

// smallKimi writes a small checkpoint with Kimi K2.5's structure.
func smallKimi(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "full")
	spec := ckptgen.KimiK25().Scale(1.0 / 16)
	spec.Layers, spec.Experts, spec.ActiveExperts, spec.Files, spec.Vision = 2, 4, 4, 2, false
	_, err := ckptgen.Write(context.Background(), dir, spec, &ckptgen.Options{Seed: 3})
	require.NoError(t, err)
	return dir
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		out[e.Name()] = hex.EncodeToString(sum[:])
	}
	return out
}

func TestAnOutputThatIsTheSourceIsRefusedAndTheSourceKept(t *testing.T) {
	model := smallKimi(t)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(model, link))
	before := snapshot(t, model)
	for _, out := range []string{model, model + "/", link, filepath.Join(model, "rank{rank}")} {
		t.Run(out, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"--model", model, "--world", "2", "--rank", "0", "--out", out, "--quiet"}, &stdout, &stderr)
			assert.Equal(t, 1, code)
			msg := strings.TrimRight(stderr.String(), "\n")
			assert.Contains(t, msg, "outside the source")
			assert.NotContains(t, msg, "\n")
			assert.Equal(t, before, snapshot(t, model), "the source changed")
		})
	}
}

func TestAWorldSizeThatCannotSplitTheModelIsOneLine(t *testing.T) {
	model := smallKimi(t)
	var stdout, stderr bytes.Buffer
	code := run([]string{"--model", model, "--world", "3", "--rank", "0", "--out", filepath.Join(t.TempDir(), "r"), "--quiet"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	msg := strings.TrimRight(stderr.String(), "\n")
	assert.NotContains(t, msg, "\n")
	assert.Contains(t, msg, "cannot be split into 3 parts")
	assert.Contains(t, msg, "more")
}
