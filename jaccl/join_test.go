package jaccl

import (
	"context"
	"errors"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// launchWithInitTimeout runs the named rank program as n ring ranks under
// an init timeout and returns the output, the error and how long it took.
func launchWithInitTimeout(t *testing.T, name string, n int, timeout time.Duration, env ...string) (string, error, time.Duration) {
	t.Helper()
	requireMLX(t)
	out := new(syncBuffer)
	// The bound of the test itself: without an init timeout the job
	// waits for ever.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]},
		N:       n,
		Backend: Ring,
		Env:     append([]string{"JACCL_GROUP_RANK=" + name}, env...),
		Stdout:  out,
		Stderr:  out,
		// A long grace: a stopped rank must end at once, not after it.
		Grace:       20 * time.Second,
		InitTimeout: timeout,
	})
	require.NoError(t, ctx.Err(), "the job was still waiting after a minute:\n%s", out)
	return out.String(), err, time.Since(start)
}

func TestARankThatNeverArrivesEndsTheJobNamingIt(t *testing.T) {
	out, err, took := launchWithInitTimeout(t, "stop-before-init", 3, 2*time.Second)
	var re *cluster.RankError
	require.ErrorAs(t, err, &re, out)
	assert.NotEqual(t, 1, re.Rank, "the stopped rank cannot be the one that fails")
	assert.Equal(t, []int{1}, re.NotJoined)
	assert.Contains(t, err.Error(), "rank 1 never joined the group")
	assert.Contains(t, out, "no group within 2s; waiting for rank")
	assert.Contains(t, out, "rank 1 (127.0.0.1:")
	assert.NotContains(t, out, "group formed without rank 1")
	assert.Less(t, took, 10*time.Second, "the stopped rank was not ended at once")
}

func TestTheLauncherStopsAJobWhoseRanksWaitForEver(t *testing.T) {
	// Rank 0 disables its own timeout, so only the launcher can end it.
	out, err, took := launchWithInitTimeout(t, "stop-before-init", 2, 2*time.Second, "JACCL_GROUP_WAIT_FOREVER=1")
	var je *cluster.JoinError
	require.ErrorAs(t, err, &je, out)
	assert.Equal(t, []int{1}, je.Ranks)
	assert.True(t, errors.Is(err, cluster.ErrInitTimeout))
	assert.Contains(t, err.Error(), "rank 1 (127.0.0.1) did not join the group within 2s")
	assert.Less(t, took, 15*time.Second)
}

func TestInitTimeoutComesFromTheEnvironment(t *testing.T) {
	tests := []struct {
		name string
		opt  time.Duration
		env  string
		want time.Duration
		bad  bool
	}{
		{"the option wins", 5 * time.Second, "9s", 5 * time.Second, false},
		{"the variable when the option is zero", 0, "9s", 9 * time.Second, false},
		{"the default when neither is set", 0, "", cluster.DefaultInitTimeout, false},
		{"a negative variable waits for ever", 0, "-1s", -time.Second, false},
		{"a malformed variable is an error", 0, "soon", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(cluster.InitTimeoutEnv, tt.env)
			got, err := initTimeout(tt.opt)
			if tt.bad {
				require.Error(t, err)
				assert.Contains(t, err.Error(), cluster.InitTimeoutEnv)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Less(t, cluster.DefaultInitTimeout, time.Minute)
}

func TestAnSSHFailureShowsSSHsOwnErrorLine(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client on this machine")
	}
	tests := []struct {
		name string
		host string
		want string
	}{
		{"an unresolvable host", "mlxdist-no-such-host.invalid", "Could not resolve hostname"},
		{"a refused connection", "127.0.0.2", "Connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := new(syncBuffer)
			err := cluster.Launch(context.Background(), cluster.LaunchConfig{
				// Rank 0 waits to be stopped; rank 1's ssh fails.
				Command: []string{"sleep", "60"},
				Hostfile: &cluster.Hostfile{Hosts: []cluster.Host{
					{SSH: "127.0.0.1", IPs: []string{"127.0.0.1"}},
					{SSH: tt.host, IPs: []string{"127.0.0.1"}},
				}},
				Backend: Ring,
				Stdout:  out, Stderr: out,
				Grace: time.Second,
				SSH:   "ssh",
			})
			var re *cluster.RankError
			require.ErrorAs(t, err, &re, out)
			assert.Equal(t, 1, re.Rank)
			assert.Equal(t, 255, re.ExitCode)
			assert.Contains(t, re.SSH, tt.want)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestAMissingWorkingDirectoryIsNamed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "absent")
	err := cluster.Launch(context.Background(), cluster.LaunchConfig{Command: []string{"true"}, N: 1, Dir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "working directory "+dir+" does not exist")
	assert.NotContains(t, err.Error(), "true", "the program is not to blame")
}
