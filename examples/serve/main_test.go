//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"a model directory is required", nil, 2, "--model DIR is required"},
		{"a stray argument is refused", []string{"--model", "m", "extra"}, 2, `unexpected argument "extra"`},
		{"a negative context is refused", []string{"--model", "m", "--max-context", "-1"}, 2, "--max-context -1"},
		{"zero default max tokens is refused", []string{"--model", "m", "--max-tokens", "0"}, 2, "--max-tokens 0"},
		{"an unknown strategy is refused", []string{"--model", "m", "--strategy", "lazy"}, 2, `--strategy "lazy"`},
		{"help is no error", []string{"--help"}, 0, "usage: serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, code := parseFlags(tc.args, &stderr)
			assert.Nil(t, o)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, stderr.String(), tc.msg)
		})
	}
	o, code := parseFlags([]string{"--model", "/models/tiny-llama/"}, &bytes.Buffer{})
	require.NotNil(t, o, "exit %d", code)
	assert.Equal(t, "tiny-llama", o.name, "the model is named after its directory")
}

// TestServeUnderLaunch runs the program as users do, under launch on two
// local ranks, asks it for the models and a chat completion, and stops it
// with SIGTERM.
func TestServeUnderLaunch(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX: %v", err)
	}
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		testenv.Unavailable(t, "MLX has no ring back-end: %v", err)
	}
	serve, launch := testenv.GoBuild(t, "."), testenv.GoBuild(t, "../launch")
	dir := filepath.Join(t.TempDir(), "tiny")
	spec := ckptgen.Spec{ModelType: ckptgen.LlamaType, Vocab: 512, Hidden: 64, Layers: 1, Heads: 2, KVHeads: 2,
		HeadDim: 32, Intermediate: 128, Dtype: "F32", Files: 1}
	_, err := ckptgen.Write(context.Background(), dir, spec, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, launch, "-n", "2", "--", serve, "--model", dir, "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	listening := regexp.MustCompile(`msg=listening addr=(\S+)`)
	var addr string
	var out strings.Builder
	for line := range lines {
		out.WriteString(line + "\n")
		if m := listening.FindStringSubmatch(line); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		cmd.Wait() // the job has ended: its standard error is complete
		t.Fatalf("rank 0 never listened:\n%s%s", out.String(), stderr.String())
	}
	base := "http://" + addr

	resp, err := http.Get(base + "/v1/models")
	require.NoError(t, err)
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&models))
	resp.Body.Close()
	require.Len(t, models.Data, 1)
	assert.Equal(t, "tiny", models.Data[0].ID)

	resp, err = http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}`))
	require.NoError(t, err)
	var chat struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&chat))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, chat.Choices, 1)
	assert.LessOrEqual(t, chat.Usage.CompletionTokens, 4)
	assert.Positive(t, chat.Usage.CompletionTokens)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	for line := range lines {
		out.WriteString(line + "\n")
	}
	cmd.Wait()
	assert.Contains(t, out.String(), "msg=request", "one log line per request")
	assert.Contains(t, out.String(), `msg="shutting down"`, "rank 0 shut down on the signal")
}
