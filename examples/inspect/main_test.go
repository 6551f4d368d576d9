package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mlxdist/mlxdist/safetensors"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

func TestInspectListsTensorsSortedWithHashes(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.TensorData{
		{{Name: "z", Dtype: safetensors.U8, Shape: []int64{1, 2}, Data: []byte("ab")}},
		{{Name: "a", Dtype: safetensors.F32, Shape: []int64{1}, Data: []byte("wxyz")}},
	}, nil))
	var out bytes.Buffer
	require.NoError(t, run(&out, dir, false))
	assert.Equal(t, "a F32 [1] 4 17f488f768db8fbe7a408a9469203c61e03b5fe43214b95a00e7c0c52d2fd933\n"+
		"z U8 [1,2] 2 fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603\n"+
		"total: 2 tensors, 6 bytes (0.00 GB), 2 files\n", out.String())

	out.Reset()
	require.NoError(t, run(&out, dir, true))
	var r report
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	assert.Equal(t, 2, r.Totals.Files)
	assert.Equal(t, "z", r.Tensors[1].Name)
	assert.Equal(t, []int64{1, 2}, r.Tensors[1].Shape)
}

func TestInspectFailsCleanlyOnCorruptInput(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := testenv.GoBuild(t, ".")
	corrupt, err := filepath.Glob("../../safetensors/testdata/corrupt-*.safetensors")
	require.NoError(t, err)
	require.NotEmpty(t, corrupt)
	for _, p := range append(corrupt, filepath.Join(t.TempDir(), "absent")) {
		cmd := exec.Command(bin, p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, p)
		assert.Equal(t, 1, ee.ExitCode(), p)
		msg := strings.TrimRight(stderr.String(), "\n")
		assert.NotContains(t, msg, "\n", "one line for %s", p)
		assert.True(t, strings.HasPrefix(msg, "inspect: "), msg)
		assert.NotContains(t, msg, "goroutine", p)
	}
	help, err := exec.Command(bin, "--help").CombinedOutput()
	require.NoError(t, err)
	assert.Contains(t, string(help), "example:")
}

func TestAFIFOIsRefusedInsteadOfBlocking(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := testenv.GoBuild(t, ".")
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.safetensors")
	require.NoError(t, unix.Mkfifo(fifo, 0o644))
	for _, p := range []string{fifo, dir} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, bin, p)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		blocked := ctx.Err()
		cancel()
		require.NoError(t, blocked, "inspect %s blocked", p)
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, p)
		assert.Equal(t, 1, ee.ExitCode())
		msg := strings.TrimRight(stderr.String(), "\n")
		assert.NotContains(t, msg, "\n")
		assert.Contains(t, msg, "named pipe")
	}
}

func TestAFileTruncatedWhileHashedIsAnErrorNamingIt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.safetensors")
	page := int64(os.Getpagesize())
	require.NoError(t, safetensors.WriteFile(p, []safetensors.TensorData{
		{Name: "w", Dtype: safetensors.U8, Shape: []int64{8, page}, Data: make([]byte, 8*page)},
	}, nil))
	f, err := safetensors.Open(p)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, os.Truncate(p, f.DataOffset()))
	_, err = hashTensor(f, "w")
	require.ErrorIs(t, err, safetensors.ErrChanged)
	assert.Contains(t, err.Error(), p)
}
