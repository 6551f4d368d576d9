//go:build unix

package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

// With JACCL_ENV_PROBE set, the test binary is a rank program that prints
// the launcher-set part of its environment, one "env RANK NAME=VALUE" line
// per variable, with the content of the files MLX_HOSTFILE and
// MLX_IBV_DEVICES name in place of their paths. It runs in init, before any
// TestMain.
func init() {
	if os.Getenv("JACCL_ENV_PROBE") == "" {
		return
	}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if !launcherVar(name) {
			continue
		}
		if name == "MLX_HOSTFILE" || name == "MLX_IBV_DEVICES" {
			b, err := os.ReadFile(value)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			value = "file " + compactJSON(b)
		}
		fmt.Printf("env %s %s=%s\n", os.Getenv("MLX_RANK"), name, value)
	}
	os.Exit(0)
}

// compactJSON is b without JSON's insignificant spaces (Python's
// json.dumps puts one after every comma), or b trimmed when it is not JSON.
func compactJSON(b []byte) string {
	var c bytes.Buffer
	if err := json.Compact(&c, bytes.TrimSpace(b)); err != nil {
		return strings.TrimSpace(string(b))
	}
	return c.String()
}

// launcherVar reports whether a variable is one a launcher sets for MLX.
func launcherVar(name string) bool {
	for _, p := range []string{"MLX_", "JACCL_", "NCCL_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return name == "CUDA_VISIBLE_DEVICES" || name == "EXTRA"
}

// goldenVars reads a golden file of renderEnv as "NAME=VALUE" lines, a
// file's content as "NAME=file CONTENT".
func goldenVars(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/golden", name+".txt"))
	require.NoError(t, err)
	var out []string
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 0; i < len(lines); i++ {
		if f, ok := strings.CutPrefix(lines[i], "--- file "); ok {
			i++
			require.Less(t, i, len(lines), "file %s has no content line", f)
			out = append(out, f+"=file "+compactJSON([]byte(lines[i])))
			continue
		}
		out = append(out, lines[i])
	}
	return out
}

func TestTheEnvironmentGoldensHoldWhatMLXLaunchSets(t *testing.T) {
	py := testenv.Python(t)
	launcher := filepath.Join(filepath.Dir(py), "mlx.launch")
	if _, err := os.Stat(launcher); err != nil {
		testenv.Unavailable(t, "no mlx.launch next to %s", py)
	}
	// The seed's hostfile with both hosts reached as 127.0.0.1, which
	// mlx.launch runs without ssh; the addresses and devices are the
	// seed's, so the variables are the ones it would send to each host.
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)
	raw, err := os.ReadFile("testdata/hosts-seed.json")
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	for _, h := range doc["hosts"].([]any) {
		h.(map[string]any)["ssh"] = "127.0.0.1"
	}
	local, err := json.Marshal(doc)
	require.NoError(t, err)
	hostfile := filepath.Join(t.TempDir(), "hosts.json")
	require.NoError(t, os.WriteFile(hostfile, local, 0o644))
	require.Len(t, hf.Hosts, 2)

	// MLX_WORLD_SIZE is ours on every back-end: ranks read their job's
	// size from it (LaunchedSize). mlx.launch sets it for nccl only.
	ours := []string{"MLX_WORLD_SIZE="}
	tests := []struct {
		name    string
		args    []string
		goldens []string // one per rank; "" for a rank without a golden
	}{
		{"jaccl", []string{"--backend", "jaccl"}, []string{"jaccl-rank0", "jaccl-rank1"}},
		{"jaccl-ring", []string{"--backend", "jaccl-ring"}, []string{"", "jaccl-ring-rank1"}},
		{"ring, verbose", []string{"--backend", "ring", "--verbose"}, []string{"", "ring-rank1"}},
		{"nccl with an extra variable", []string{"--backend", "nccl", "--env", "EXTRA=a b"}, []string{"", "nccl-rank1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			args := append([]string{"--hostfile", hostfile}, tt.args...)
			cmd := exec.CommandContext(ctx, launcher, append(args, "--", os.Args[0])...)
			cmd.Env = append(Environ(os.Environ(), nil), "JACCL_ENV_PROBE=1")
			inherited := func(v string) bool { return slices.Contains(cmd.Env, v) }
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, string(out))
			for rank, golden := range tt.goldens {
				if golden == "" {
					continue
				}
				var set []string
				prefix := fmt.Sprintf("env %d ", rank)
				for _, line := range strings.Split(string(out), "\n") {
					if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), prefix); ok && !inherited(v) {
						set = append(set, v)
					}
				}
				require.NotEmpty(t, set, "rank %d printed nothing:\n%s", rank, out)
				want := goldenVars(t, golden)
				for _, v := range set {
					assert.Contains(t, want, v, "mlx.launch sets %s for rank %d; golden %s must hold it", v, rank, golden)
				}
				for _, v := range want {
					if !slices.Contains(set, v) && !slices.ContainsFunc(ours, func(p string) bool { return strings.HasPrefix(v, p) }) {
						assert.Fail(t, "golden sets what mlx.launch does not", "%s in golden %s, not set by mlx.launch for rank %d", v, golden, rank)
					}
				}
			}
		})
	}
}
