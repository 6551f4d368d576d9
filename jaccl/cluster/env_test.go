package cluster

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// renderEnv prints a rank's environment in a stable text form: the variables
// in export order, then each file's name and content.
func renderEnv(re *RankEnv) string {
	var b strings.Builder
	for _, v := range re.Vars {
		b.WriteString(v + "\n")
	}
	for _, f := range re.Files {
		b.WriteString("--- file " + f.Name + "\n" + string(f.Content))
	}
	return b.String()
}

func TestNewRankEnvMatchesTheGoldensForTheSeedHostfile(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)

	tests := []struct {
		name   string
		golden string
		opt    EnvOptions
		rank   int
	}{
		{"jaccl rank 0 gets the device matrix and the LAN coordinator", "jaccl-rank0", EnvOptions{}, 0},
		{"jaccl rank 1 differs only in MLX_RANK", "jaccl-rank1", EnvOptions{}, 1},
		{"jaccl-ring adds MLX_JACCL_RING", "jaccl-ring-rank1", EnvOptions{Backend: JACCLRing}, 1},
		{"ring lists every host's ip with ports from 32323", "ring-rank1", EnvOptions{Backend: Ring, Verbose: true}, 1},
		{"nccl points every rank at rank 0", "nccl-rank1", EnvOptions{Backend: NCCL, Env: []string{"EXTRA=a b"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, err := NewRankEnv(hf, tt.rank, tt.opt)
			require.NoError(t, err)
			got := renderEnv(re)
			path := filepath.Join("testdata/golden", tt.golden+".txt")
			if *update {
				require.NoError(t, os.MkdirAll("testdata/golden", 0o755))
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, string(want), got)
		})
	}
}

func TestNewRankEnvGivesLocalRanksTheirPorts(t *testing.T) {
	re, err := NewRankEnv(LocalHostfile(3), 2, EnvOptions{Ports: []int{40001, 40007, 40003}})
	require.NoError(t, err)
	assert.Equal(t, Ring, re.Backend)
	assert.Equal(t, []string{"MLX_WORLD_SIZE=3", "MLX_RANK=2"}, re.Vars)
	require.Len(t, re.Files, 1)
	assert.Equal(t, "MLX_HOSTFILE", re.Files[0].Name)
	assert.JSONEq(t, `[["127.0.0.1:40001"],["127.0.0.1:40007"],["127.0.0.1:40003"]]`, string(re.Files[0].Content))

	_, err = NewRankEnv(LocalHostfile(3), 0, EnvOptions{Ports: []int{1, 2}})
	assert.ErrorContains(t, err, "2 ring ports given for 3 addresses")
}

func TestNewRankEnvGivesASingleRingRankNoHostfile(t *testing.T) {
	// MLX's ring blocks forever on a one-entry hostfile; without one, init
	// returns the size-1 group.
	re, err := NewRankEnv(LocalHostfile(1), 0, EnvOptions{})
	require.NoError(t, err)
	assert.Empty(t, re.Files)
	assert.Equal(t, []string{"MLX_WORLD_SIZE=1", "MLX_RANK=0"}, re.Vars)
}

func TestNewRankEnvRefusesWhatItCannotSetUp(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)

	_, err = NewRankEnv(hf, 0, EnvOptions{Backend: MPI})
	assert.ErrorContains(t, err, "mpirun")
	_, err = NewRankEnv(hf, 2, EnvOptions{})
	assert.ErrorContains(t, err, "rank 2 out of range for 2 hosts")
	_, err = NewRankEnv(hf, 0, EnvOptions{Env: []string{"NOVALUE"}})
	assert.ErrorContains(t, err, `"NOVALUE" is not NAME=value`)
	_, err = NewRankEnv(LocalHostfile(2), 0, EnvOptions{Backend: JACCL})
	assert.ErrorIs(t, err, ErrHostfile)
}

func TestRankEnvWriteCreatesTheFilesItExports(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)
	re, err := NewRankEnv(hf, 1, EnvOptions{})
	require.NoError(t, err)

	dir := t.TempDir()
	env, err := re.Write(dir)
	require.NoError(t, err)
	require.Len(t, env, len(re.Vars)+1)
	assert.Equal(t, re.Vars, env[:len(re.Vars)])

	name, path, ok := strings.Cut(env[len(env)-1], "=")
	require.True(t, ok)
	assert.Equal(t, "MLX_IBV_DEVICES", name)
	assert.True(t, filepath.IsAbs(path))
	assert.Equal(t, dir, filepath.Dir(path))
	content, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `[[null,["rdma_en3","rdma_en5"]],[["rdma_en3","rdma_en5"],null]]`, string(content))
}

func TestEnvironDropsInheritedLauncherVariables(t *testing.T) {
	base := []string{"HOME=/home/u", "MLX_RANK=7", "MLX_IBV_DEVICES=/old", "JACCL_COORDINATOR=x:1", "PATH=/bin"}
	got := Environ(base, []string{"MLX_RANK=0"})
	assert.Equal(t, []string{"HOME=/home/u", "PATH=/bin", "MLX_RANK=0"}, got)
}

func TestNCCLRanksOfOneHostEachSeeTheirOwnGPU(t *testing.T) {
	hf := LocalHostfile(3)
	for rank, want := range []string{"0", "1", "2"} {
		re, err := NewRankEnv(hf, rank, EnvOptions{Backend: NCCL})
		require.NoError(t, err)
		assert.Contains(t, re.Vars, "CUDA_VISIBLE_DEVICES="+want, "rank %d", rank)
	}
	re, err := NewRankEnv(hf, 1, EnvOptions{Backend: NCCL, Env: []string{"CUDA_VISIBLE_DEVICES=5,6"}})
	require.NoError(t, err)
	assert.Contains(t, re.Vars, "CUDA_VISIBLE_DEVICES=5,6")
	assert.NotContains(t, re.Vars, "CUDA_VISIBLE_DEVICES=1", "a caller's choice of devices wins")
	re, err = NewRankEnv(hf, 1, EnvOptions{Backend: Ring})
	require.NoError(t, err)
	for _, v := range re.Vars {
		assert.NotContains(t, v, "CUDA_VISIBLE_DEVICES", "only nccl pins GPUs")
	}
}

func TestLocalRanksCountsTheRingRanksOnThisRanksAddress(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.json")
	require.NoError(t, os.WriteFile(path, []byte(`[["127.0.0.1:5000"], ["127.0.0.1:5001"], ["10.0.0.2:5000"]]`), 0o644))
	t.Setenv("MLX_HOSTFILE", path)
	t.Setenv("MLX_RANK", "1")
	assert.Equal(t, 2, LocalRanks())
	t.Setenv("MLX_RANK", "2")
	assert.Equal(t, 1, LocalRanks())
	t.Setenv("MLX_HOSTFILE", "")
	assert.Equal(t, 1, LocalRanks(), "no hostfile: one rank per host")
}
