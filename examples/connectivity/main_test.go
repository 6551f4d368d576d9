//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// connectivityBinary builds this program once per test run.
func connectivityBinary(t *testing.T) string {
	t.Helper()
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not available: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Unavailable(t, "no go command to build the example: %v", err)
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "connectivity-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "connectivity")
		out, err := exec.Command(goTool, "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLaunchedRanksPrintTheSeedsExpectedLines(t *testing.T) {
	bin := connectivityBinary(t)
	for _, tt := range []struct {
		n   int
		sum string
	}{{2, "3.0"}, {4, "10.0"}} {
		t.Run(fmt.Sprintf("%d ranks sum to %s", tt.n, tt.sum), func(t *testing.T) {
			var out syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			err := cluster.Launch(ctx, cluster.LaunchConfig{Command: []string{bin}, N: tt.n, Stdout: &out, Stderr: &out})
			require.NoError(t, err, out.String())
			for r := range tt.n {
				p := fmt.Sprintf("[%d] [Rank %d/%d] ", r, r, tt.n)
				assert.Contains(t, out.String(), p+fmt.Sprintf("all_sum result: %s (expected: %s)\n", tt.sum, tt.sum))
				assert.Regexp(t, `\Q`+p+`\EActive memory: \d+\.\d\d GB\n`, out.String())
				assert.Contains(t, out.String(), p+"Distributed test PASSED\n")
			}
		})
	}
}

// mlx.launch starts any command when --python is not given, so the seed's
// own launcher runs the Go program unchanged.
func TestMLXLaunchRunsTheGoProgram(t *testing.T) {
	bin := connectivityBinary(t)
	py := testenv.Python(t)
	launcher := filepath.Join(filepath.Dir(py), "mlx.launch")
	if _, err := os.Stat(launcher); err != nil {
		testenv.Unavailable(t, "no mlx.launch next to %s", py)
	}
	// mlx.launch counts ports up from --starting-port; take two the kernel
	// says are free rather than its fixed default.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, launcher, "--backend", "ring", "-n", "2", "--starting-port", strconv.Itoa(port), "--", bin)
	cmd.Env = cluster.Environ(os.Environ(), nil)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	for r := range 2 {
		assert.Contains(t, string(out), fmt.Sprintf("[Rank %d/2] all_sum result: 3.0 (expected: 3.0)", r))
		assert.Contains(t, string(out), fmt.Sprintf("[Rank %d/2] Distributed test PASSED", r))
	}
}

func TestRunReportsUsageAndBadInput(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help prints an example invocation", []string{"--help"}, 0, "bin/launch -n 2 -- bin/connectivity"},
		{"an unknown flag is a usage error", []string{"--ranks", "2"}, 2, "flag provided but not defined"},
		{"a stray argument is a usage error", []string{"extra"}, 2, `unexpected argument "extra"`},
		{"an unknown back-end is named", []string{"--backend", "tcp"}, 2, `unknown back-end "tcp"`},
		{"a negative timeout is refused", []string{"--timeout", "-1s"}, 2, "--timeout -1s: give a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			assert.Equal(t, tt.code, code)
			assert.Contains(t, stderr.String(), tt.stderr)
			assert.NotContains(t, stderr.String(), "goroutine", "no stack trace")
		})
	}
}

func TestRunWithoutALauncherFailsWithAFix(t *testing.T) {
	bin := connectivityBinary(t)
	cmd := exec.Command(bin, "--backend", "ring")
	cmd.Env = cluster.Environ(os.Environ(), nil)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, string(out))
	assert.Equal(t, 1, ee.ExitCode())
	assert.Equal(t, 1, strings.Count(string(out), "connectivity: "), "one line of error")
	assert.NotContains(t, string(out), "goroutine", "no stack trace")
	assert.Contains(t, string(out), "launch -n N -- CMD")
}

func TestChooseBackendPrefersTheLaunchersEnvironment(t *testing.T) {
	tests := []struct {
		name     string
		flag     string
		launched jaccl.Backend
		want     jaccl.Backend
	}{
		{"no flag and no launcher is the seed's jaccl", "", "", jaccl.JACCL},
		{"no flag under a ring launcher is ring", "", jaccl.Ring, jaccl.Ring},
		{"no flag under a jaccl launcher is jaccl", "", jaccl.JACCL, jaccl.JACCL},
		{"an explicit flag is passed on for Init to check", "jaccl", jaccl.Ring, jaccl.JACCL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseBackend(tt.flag, tt.launched)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
