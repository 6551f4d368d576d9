package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlanWorksOfflineAndWritesAHostfile(t *testing.T) {
	dir := t.TempDir()
	hostfile := filepath.Join(dir, "hosts.json")
	planFile := filepath.Join(dir, "plan.json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--hostfile", hostfile, "--out", planFile, "--env", "MLX_METAL_FAST_SYNCH=1"}, &out)
	require.NoError(t, err)
	assert.Contains(t, out.String(), "sudo ifconfig en2 inet 10.10.0.1/30 up")
	assert.NotContains(t, out.String(), "route")

	b, err := os.ReadFile(hostfile)
	require.NoError(t, err)
	var h struct {
		Backend string
		Envs    []string
		Hosts   []struct{ SSH string }
	}
	require.NoError(t, json.Unmarshal(b, &h))
	assert.Equal(t, "jaccl", h.Backend)
	assert.Equal(t, []string{"MLX_METAL_FAST_SYNCH=1"}, h.Envs)
	assert.Len(t, h.Hosts, 4)

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"persist", "--plan", planFile, "--node", "m2", "--out", dir}, &out))
	assert.Contains(t, out.String(), "launchctl bootstrap system /Library/LaunchDaemons/com.mlxdist.tbnet.plist")
	_, err = os.Stat(filepath.Join(dir, "com.mlxdist.tbnet.plist"))
	assert.NoError(t, err)
}

func TestBadInputGivesOneLineErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"nodes":[{"name":"a","thunderbolt":[],"colour":"red"}]}`), 0o644))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"an unknown command", []string{"frobnicate"}, "unknown command"},
		{"plan without a cluster", []string{"plan"}, "--cluster is required"},
		{"a cluster with an unknown field", []string{"plan", "--cluster", bad}, "unknown field"},
		{"a bad pool", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--pool", "ten"}, "--pool"},
		{"a Tailscale pool", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--pool", "100.64.0.0/16"}, "is not inside 10.0.0.0/8"},
		{"a public pool", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--pool", "8.8.8.0/24"}, "8.8.8.0/24 is not inside"},
		{"the whole address space", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--pool", "0.0.0.0/0"}, "0.0.0.0/0 is not inside"},
		{"an env without a value", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--env", "NOEQ"}, "not KEY=VALUE"},
		{"a bad backend", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--backend", "mpi"}, "unknown backend"},
		{"diagnose with nothing", []string{"diagnose"}, "give --error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestEveryCommandHasHelp(t *testing.T) {
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			err := run(context.Background(), []string{name, "--help"}, &bytes.Buffer{})
			assert.ErrorIs(t, err, flag.ErrHelp)
			assert.True(t, strings.HasPrefix(examples[name], "tbnet "+name))
		})
	}
}

func TestPersistRefusesANodeNotInThePlan(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	require.NoError(t, run(context.Background(), []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--out", planFile}, &bytes.Buffer{}))
	out := filepath.Join(dir, "daemon")
	err := run(context.Background(), []string{"persist", "--plan", planFile, "--node", "m9", "--out", out}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--node m9 is not in the plan; give one of m1, m2, m3, m4")
	assert.NoDirExists(t, out, "nothing is written for a node that is not in the plan")
}

func TestOutputsAreWrittenWholeWithTheUsualMode(t *testing.T) {
	dir := t.TempDir()
	ref, err := os.Create(filepath.Join(dir, "ref"))
	require.NoError(t, err)
	ref.Close()
	want, err := os.Stat(ref.Name())
	require.NoError(t, err)
	require.NoError(t, run(context.Background(), []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json",
		"--out", filepath.Join(dir, "plan.json"), "--hostfile", filepath.Join(dir, "hosts.json")}, &bytes.Buffer{}))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		assert.Equal(t, want.Mode().Perm(), st.Mode().Perm(), e.Name())
	}
	assert.ElementsMatch(t, []string{"ref", "plan.json", "hosts.json"}, names, "no temporary file is left")
}

func TestFlagHelpNamesTheValueNotACommand(t *testing.T) {
	for _, name := range []string{"apply", "verify", "persist", "rollback", "diagnose"} {
		t.Run(name, func(t *testing.T) {
			// The flag package prints help to the standard error of the
			// moment; catch it.
			r, w, err := os.Pipe()
			require.NoError(t, err)
			stderr := os.Stderr
			os.Stderr = w
			runErr := commands[name](context.Background(), []string{"--help"}, &bytes.Buffer{})
			os.Stderr = stderr
			w.Close()
			b, _ := io.ReadAll(r)
			require.ErrorIs(t, runErr, flag.ErrHelp)
			assert.NotRegexp(t, `-\w+ tbnet `, string(b), "a flag's value is shown as a command")
			assert.Regexp(t, `-(plan|snapshot|state) FILE`, string(b))
		})
	}
}

func TestReconcileElsewhereDoesNotSuggestAFlagItLacks(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("reconcile runs on macOS; the message is for other systems")
	}
	err := run(context.Background(), []string{"reconcile", "--node", "m1"}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs macOS")
	assert.NotContains(t, err.Error(), "--hosts")
}
