package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

func buildLaunch(t *testing.T) string {
	t.Helper()
	return testenv.GoBuild(t, ".")
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

func TestLaunchPrefixesEveryRankAndExitsWithAFailingRanksStatus(t *testing.T) {
	bin := buildLaunch(t)

	out, err := exec.Command(bin, "-n", "3", "--", "sh", "-c", `echo "rank $MLX_RANK of $MLX_WORLD_SIZE"`).CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{"[0] rank 0 of 3", "[1] rank 1 of 3", "[2] rank 2 of 3"} {
		assert.Contains(t, string(out), want)
	}

	out, err = exec.Command(bin, "-n", "2", "--", "sh", "-c", `[ "$MLX_RANK" = 1 ] && exit 7; sleep 30`).CombinedOutput()
	assert.Equal(t, 7, exitCode(err), "%s", out)
	assert.Contains(t, string(out), "rank 1")
}

func TestLaunchRejectsBadInvocationsWithUsage(t *testing.T) {
	bin := buildLaunch(t)
	for name, args := range map[string][]string{
		"no command":           {"-n", "2"},
		"neither n nor hosts":  {"--", "true"},
		"unknown flag":         {"--frobnicate", "--", "true"},
		"a malformed hostfile": {"--hostfile", writeFile(t, `{"hosts": [{"ssh": "a", "rdma": "x"}]}`), "--", "true"},
		"a missing hostfile":   {"--hostfile", filepath.Join(t.TempDir(), "none.json"), "--", "true"},
		"a malformed --env":    {"-n", "1", "--env", "NOVALUE", "--", "true"},
		"an unknown back-end":  {"-n", "1", "--backend", "carrier-pigeon", "--", "true"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(bin, args...).CombinedOutput()
			assert.NotEqual(t, 0, exitCode(err), "%s", out)
			assert.NotContains(t, string(out), "goroutine ", "no stack traces")
			assert.LessOrEqual(t, strings.Count(strings.TrimSpace(string(out)), "\n"), 40)
		})
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	require.NoError(t, err)
	assert.Contains(t, string(out), "bin/launch -n 2 -- bin/connectivity")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts.json")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func TestLaunchNamesTheFlagThatIsWrong(t *testing.T) {
	bin := buildLaunch(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no ranks", []string{"-n", "0", "--", "true"}, "-n 0: a job needs at least one rank"},
		{"a port past 65535", []string{"-n", "1", "--port", "70000", "--", "true"}, "--port 70000"},
		{"a negative grace", []string{"-n", "1", "--grace", "-1s", "--", "true"}, "--grace -1s"},
		{"a zero init timeout", []string{"-n", "1", "--init-timeout", "0s", "--", "true"}, "--init-timeout 0s"},
		{"a working directory that does not exist", []string{"-n", "1", "--cwd", "/nonexistent-mlxdist", "--", "true"}, "working directory /nonexistent-mlxdist does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(bin, tt.args...).CombinedOutput()
			assert.NotEqual(t, 0, exitCode(err), "%s", out)
			msg := strings.TrimSpace(string(out))
			assert.Equal(t, "launch: ", msg[:min(len(msg), 8)])
			assert.Contains(t, msg, tt.want)
			assert.NotContains(t, msg, "\n")
			assert.NotContains(t, msg, "jaccl")
		})
	}
}

func TestARingJobsFailureDoesNotMentionJaccl(t *testing.T) {
	bin := buildLaunch(t)
	out, err := exec.Command(bin, "-n", "2", "--", "sh", "-c", `[ "$MLX_RANK" = 1 ] && exit 7; exit 0`).CombinedOutput()
	assert.Equal(t, 7, exitCode(err), "%s", out)
	assert.Contains(t, string(out), "launch: rank 1 (127.0.0.1) failed: exit status 7")
	assert.NotContains(t, string(out), "jaccl")
}

func TestAOneRankJobRunsConnectivityAsAGroupOfOne(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not loadable: %v", err)
	}
	bin, conn := buildLaunch(t), testenv.GoBuild(t, "../connectivity")
	out, err := exec.Command(bin, "-n", "1", "--", conn).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "[Rank 0/1] Distributed test PASSED")
}
