package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
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
		{"an exhausted pool", []string{"plan", "--cluster", "../../netcfg/testdata/mesh4.json", "--pool", "100.64.0.0/16"}, "Tailscale"},
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
