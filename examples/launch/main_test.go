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
	assert.Contains(t, string(out), "launch -n 2 -- ./connectivity")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts.json")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}
