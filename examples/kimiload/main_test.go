//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// The binaries and the checkpoint are made once per test run, in a
// directory TestMain removes.
var (
	setupOnce sync.Once
	setupErr  error
	workDir   string
	kimiBin   string
	launchBin string
	ckptDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// setup builds kimiload and launch and writes a small Kimi K2.5-layout
// checkpoint (widths 1/16, 3 layers, 8 experts, 2 shard files).
func setup(t *testing.T) {
	t.Helper()
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not available: %v", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		testenv.Unavailable(t, "no go command to build the examples: %v", err)
	}
	setupOnce.Do(func() {
		if workDir, setupErr = os.MkdirTemp("", "kimiload-test-"); setupErr != nil {
			return
		}
		kimiBin, launchBin = filepath.Join(workDir, "kimiload"), filepath.Join(workDir, "launch")
		for bin, pkg := range map[string]string{kimiBin: ".", launchBin: "../launch"} {
			if out, err := exec.Command(goTool, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				setupErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
		s := ckptgen.KimiK25().Scale(1.0 / 16)
		s.Layers, s.FirstDense = 3, 1
		s.Experts, s.ActiveExperts = 8, 8
		s.Files = 2
		ckptDir = filepath.Join(workDir, "kimi-tiny")
		_, setupErr = ckptgen.Write(context.Background(), ckptDir, s, nil)
	})
	require.NoError(t, setupErr)
}

type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs a binary with the C library this process loaded, so the
// ranks find MLX wherever the test runs.
func runCmd(t *testing.T, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = workDir
	cmd.Env = append(append(os.Environ(), mlx.EnvLibrary+"="+mlx.Path()), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %s: %v", name, err)
		code = ee.ExitCode()
	}
	return result{code, stdout.String(), stderr.String()}
}

// parseJob finds rank 0's JSON line in the (rank-prefixed) output.
func parseJob(t *testing.T, out string) job {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, jsonMarker); i >= 0 {
			var j job
			require.NoError(t, json.Unmarshal([]byte(line[i+len(jsonMarker):]), &j))
			return j
		}
	}
	require.Failf(t, "no JSON line", "output:\n%s", out)
	return job{}
}

func TestTwoRanksLoadAndVerifyEveryStrategy(t *testing.T) {
	setup(t)
	tests := []struct {
		name, strategy string
		read           string // --read, when set
		// sharded: each rank keeps the replicated tensors and half the rest.
		sharded  bool
		maxRatio float64 // peak / shard
	}{
		{"direct reads only each rank's half and peaks at the shard", "direct", "", true, 1.0001},
		{"eval-shard-eval reads everything and peaks above the shard", "eval-shard-eval", "", true, 1.2},
		{"eval-shard-eval with MLX's loader does the same", "eval-shard-eval", "mlx", true, 1.2},
		{"chunked loads the whole model on every rank", "chunked", "", false, 1.0001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-n", "2", "--", kimiBin, "--model", ckptDir, "--verify", "--json", "--strategy", tt.strategy}
			if tt.read != "" {
				args = append(args, "--read", tt.read)
			}
			r := runCmd(t, nil, launchBin, args...)
			require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			for rank := range 2 {
				assert.Contains(t, r.stdout, fmt.Sprintf("[%d] [Rank %d/2] verify PASS", rank, rank))
				assert.Contains(t, r.stdout, fmt.Sprintf("[%d] [Rank %d/2] 2 ranks share this machine: each guards 1/2", rank, rank))
				assert.Contains(t, r.stdout, fmt.Sprintf("[%d] [Rank %d/2] plan: ", rank, rank))
			}
			assert.Contains(t, r.stdout, "[0] back-end   ring")
			assert.Regexp(t, `\[0\]   verify\s+PASS\s+PASS`, r.stdout)
			assert.Regexp(t, `\[0\]   peak memory \(MLX\)\s+\d+\.\d\d GB\s+\d+\.\d\d GB`, r.stdout)
			assert.Regexp(t, `\[0\] level=INFO msg="\[Rank 0/2\] eval layer 2/\d+ layers\.0: `, r.stdout, "rank 0 logs every layer")
			assert.NotContains(t, r.stdout, `msg="[Rank 1/2]`, "only rank 0 logs layers without --verbose")

			j := parseJob(t, r.stdout)
			require.Len(t, j.PerRank, 2)
			assert.Equal(t, 2, j.Ranks)
			assert.Equal(t, "kimi_k25", j.ModelType)
			for _, f := range j.PerRank {
				assert.Equal(t, 1, f.Verified)
				assert.Positive(t, f.LoadS)
				assert.Zero(t, f.AfterFree, "rank %d: every array freed", f.Rank)
				assert.LessOrEqual(t, float64(f.Peak), float64(f.Shard)*tt.maxRatio, "rank %d peak / shard", f.Rank)
				if tt.sharded {
					assert.Equal(t, int64(j.Replicated+(j.Checkpoint-j.Replicated)/2), f.Shard, "rank %d keeps half of what is split", f.Rank)
				} else {
					assert.Equal(t, int64(j.Checkpoint), f.Shard)
				}
				if tt.strategy == "direct" {
					assert.Equal(t, f.Shard, f.BytesRead, "rank %d reads exactly its shard", f.Rank)
				} else {
					assert.Equal(t, int64(j.Checkpoint), f.BytesRead, "rank %d reads every byte", f.Rank)
				}
			}
		})
	}
}

func TestOneRankRunsWithoutLauncher(t *testing.T) {
	setup(t)
	r := runCmd(t, nil, kimiBin, "--model", ckptDir, "--verify", "--json")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "[Rank 0/1] verify PASS")
	j := parseJob(t, r.stdout)
	require.Len(t, j.PerRank, 1)
	assert.Equal(t, int64(j.Checkpoint), j.PerRank[0].Shard, "a group of one keeps everything")
}

func TestPlanOnlyPrintsKimiK25NextToTheSeed(t *testing.T) {
	setup(t)
	r := runCmd(t, nil, kimiBin, "--plan-only", "--describe", "kimi-k2.5")
	require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
	assert.Contains(t, r.stdout, "578.54 GB")
	assert.Contains(t, r.stdout, "physical 512.00 GB")
	for _, tp := range []string{"2", "4"} {
		for _, s := range []string{"direct", "eval-shard-eval"} {
			assert.Regexp(t, `(?m)^\s*`+s+`\s+`+tp+`\s+\d+\.\d\d GB\s+\d+\.\d\d GB\s+\d+\.\d\d GB\s+\d+\.\d\d GB\s+\d\.\d{3}\s+yes`, r.stdout, "TP=%s %s", tp, s)
		}
	}
	assert.Regexp(t, `seed, measured\s+2\s+612\.00 GB\s+612\.00 GB\s+309\.91 GB\s+319\.98 GB\s+1\.046`, r.stdout)
	// A direct node reads half the weights, but the sharded-to-all halves of
	// 1 KB rows touch every 16 KiB page of their tensors.
	assert.Regexp(t, `(?m)^\s*direct\s+2\s+290\.83 GB\s+387\.25 GB`, r.stdout)
}

func TestPlanOnlyOfACheckpointSaysWhatDoesNotFit(t *testing.T) {
	setup(t)
	r := runCmd(t, []string{memguard.EnvHeadroom + "=0"}, kimiBin, "--plan-only", "--model", ckptDir, "--tp", "1,2", "--memory-gb", "0.0125")
	require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
	// The checkpoint is 13.3 MB, a rank's shard of two 11.8 MB (the vision
	// tower and the embeddings are replicated): 12.5 MB nodes fit TP=2 only.
	assert.Regexp(t, `(?m)^\s*direct\s+1\s.*NO: over 0\.01 GB`, r.stdout)
	assert.Regexp(t, `(?m)^\s*direct\s+2\s.*yes`, r.stdout)
}

func TestARefusedPlanExitsOneWithTheReason(t *testing.T) {
	setup(t)
	physical, err := memguard.PhysicalMemory()
	require.NoError(t, err)
	tests := []struct {
		name string
		env  []string
		args []string
	}{
		{"a node of 1 MB refuses the load", []string{memguard.EnvHeadroom + "=0"}, []string{"--memory-gb", "0.001"}},
		// Two local ranks each guard half the machine.
		{"a headroom of all but 1 MB of a rank's share refuses the load",
			[]string{fmt.Sprintf("%s=%.9f", memguard.EnvHeadroom, float64(physical/2-1_000_000)/1e9)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-n", "2", "--", kimiBin, "--model", ckptDir}, tt.args...)
			r := runCmd(t, tt.env, launchBin, args...)
			assert.Equal(t, 1, r.code, "stdout:\n%s", r.stdout)
			assert.Regexp(t, `\[\d\] kimiload: loader: rank \d/2 direct load peaks at 0\.01 GB during .*would exceed limit`, r.stderr)
			assert.NotContains(t, r.stdout, "Load results", "nothing was loaded")
			assert.NotContains(t, r.stderr, "goroutine")
		})
	}
}

func TestUsageAndBadInput(t *testing.T) {
	setup(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"help shows a launcher example", []string{"--help"}, 0, "bin/launch -n 2 -- bin/kimiload --model"},
		{"a model is required", nil, 2, "--model DIR is required"},
		{"an unknown strategy is a usage error", []string{"--model", "x", "--strategy", "eager"}, 2, `--strategy "eager"`},
		{"plan-only needs a model or a description", []string{"--plan-only"}, 2, "needs --describe"},
		{"describe knows kimi-k2.5 only", []string{"--plan-only", "--describe", "gpt"}, 2, `--describe "gpt"`},
		{"a bad TP list is a usage error", []string{"--plan-only", "--describe", "kimi-k2.5", "--tp", "two"}, 2, `--tp "two"`},
		{"a missing checkpoint is one line and status 1", []string{"--model", filepath.Join(workDir, "nothing-here")}, 1, "kimiload: "},
		{"an unknown read mode is a usage error", []string{"--model", "x", "--read", "fast"}, 2, `--read "fast"`},
		{"MLX's loader cannot read a direct load's parts", []string{"--model", ckptDir, "--read", "mlx"}, 1, "read mode mlx needs a strategy that reads whole tensors"},
		{"a negative timeout is a usage error", []string{"--model", "x", "--timeout", "-1s"}, 2, "--timeout -1s"},
		{"a prompt is answered by TP only", []string{"--model", "x", "--pp", "2", "--prompt", "hi"}, 2, "examples/generate --pp"},
		{"--pp and --placement exclude each other", []string{"--plan-only", "--describe", "kimi-k2.5", "--pp", "2", "--placement", "auto"}, 2, "exclude each other"},
		{"a placement other than auto is a usage error", []string{"--plan-only", "--describe", "kimi-k2.5", "--placement", "even"}, 2, `--placement "even"`},
		{"node sizes are for a plan", []string{"--model", "x", "--nodes-gb", "512"}, 2, "--nodes-gb is for --plan-only"},
		{"a model TP=3 cannot split is one line and status 1", []string{"--plan-only", "--describe", "kimi-k2.5", "--tp", "3"}, 1, "cannot be split into 3 parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCmd(t, nil, kimiBin, tt.args...)
			assert.Equal(t, tt.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tt.contains)
			assert.NotContains(t, r.stderr, "goroutine")
			if tt.code == 1 {
				assert.Equal(t, 1, strings.Count(strings.TrimSpace(r.stderr), "\n")+1, "one line: %q", r.stderr)
			}
		})
	}
}

// TestVerifyCatchesAWrongShard runs verify in this process on arrays the
// loader produced, then on the same arrays with one replaced.
func TestVerifyCatchesAWrongShard(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not available: %v", err)
	}
	dir := t.TempDir()
	mk := func(name string, rows, cols int64) safetensors.TensorData {
		data := make([]byte, rows*cols*4)
		for i := range data {
			data[i] = byte(i*7 + len(name))
		}
		return safetensors.TensorData{Name: name, Dtype: safetensors.F32, Shape: []int64{rows, cols}, Data: data}
	}
	require.NoError(t, safetensors.WriteDir(dir, [][]safetensors.TensorData{{
		mk("model.embed_tokens.weight", 16, 8),
		mk("model.layers.0.mlp.up_proj.weight", 16, 8), mk("model.layers.0.mlp.down_proj.weight", 8, 16),
	}}, nil))
	guard, err := memguard.New(memguard.WithPhysical(1<<40), memguard.WithUsed("active", mlx.ActiveMemory))
	require.NoError(t, err)
	l, err := loader.Open(dir, loader.Options{Guard: guard, PlanOptions: loader.PlanOptions{Rank: 1, WorldSize: 2}})
	require.NoError(t, err)
	defer l.Close()
	arrays, err := l.LoadAll(context.Background())
	require.NoError(t, err)
	defer func() {
		for _, a := range arrays {
			a.Free()
		}
	}()

	require.NoError(t, verify(dir, l.Plan(), arrays), "the loader's arrays are right")

	const down = "model.layers.0.mlp.down_proj.weight" // [8, 16] split on the last axis: rank 1 has [8, 8]
	orig := arrays[down]
	zeros, err := mlx.Zeros([]int{8, 8}, mlx.Float32)
	require.NoError(t, err)
	defer zeros.Free()
	arrays[down] = zeros
	err = verify(dir, l.Plan(), arrays)
	require.Error(t, err)
	assert.Contains(t, err.Error(), down)
	assert.Contains(t, err.Error(), "differ from the file's part 1 of 2")

	whole, err := mlx.Zeros([]int{8, 16}, mlx.Float32)
	require.NoError(t, err)
	defer whole.Free()
	arrays[down] = whole
	err = verify(dir, l.Plan(), arrays)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "shape [8 16], want [8 8]")
	arrays[down] = orig
}

func TestPartCutsEachFusedSegment(t *testing.T) {
	// A [2, 6] U8 tensor split on axis 1 with segments [0, 4) and [4, 6):
	// rank 1 of 2 keeps columns 2-3 of the first and 5 of the second.
	full := []byte{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}
	info := safetensors.TensorInfo{Name: "w", Dtype: safetensors.U8, Shape: []int64{2, 6}, End: 12}
	got, err := part(full, info, loader.Split{Axis: 1, Bounds: []int64{0, 4, 6}}, 2, 1)
	require.NoError(t, err)
	assert.Equal(t, []byte{2, 3, 5, 12, 13, 15}, got)
	got, err = part(full, info, loader.Split{Axis: 0, Bounds: []int64{0, 2}}, 2, 0)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 2, 3, 4, 5}, got)
}

func TestThreeStagesLoadTheirLayersAsPlannedAndVerify(t *testing.T) {
	setup(t)
	r := runCmd(t, nil, launchBin, "-n", "3", "--", kimiBin, "--model", ckptDir, "--pp", "3", "--verify", "--json")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "TP=1 × PP=3 on 3 ranks")
	for rank := range 3 {
		assert.Contains(t, r.stdout, fmt.Sprintf("[%d] [Rank %d/3] verify PASS", rank, rank))
	}
	j := parseJob(t, r.stdout)
	require.Len(t, j.PerRank, 3)
	var held int64
	for _, f := range j.PerRank {
		held += f.Shard
		assert.Equal(t, f.Shard, f.BytesRead, "rank %d reads exactly its stage", f.Rank)
		assert.InDelta(t, float64(f.PlanPeak), float64(f.Peak), 0.02*float64(f.PlanPeak), "rank %d: MLX's peak within 2%% of the plan's", f.Rank)
		assert.Less(t, f.Shard, int64(j.Checkpoint)/2, "rank %d holds a stage, not the model", f.Rank)
	}
	assert.LessOrEqual(t, held, int64(j.Checkpoint), "the stages hold the language model once, the vision tower nowhere")
}

func TestPlanOnlyPlacesKimiK25OnTwoThreeAndFourNodes(t *testing.T) {
	setup(t)
	r := runCmd(t, nil, kimiBin, "--plan-only", "--describe", "kimi-k2.5", "--placement", "auto", "--context", "8192")
	require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
	assert.Contains(t, r.stdout, "nodes of 512 + 512 GB")
	assert.Contains(t, r.stdout, "TP=2 × PP=1 on 2 ranks")
	assert.Contains(t, r.stdout, "nodes of 512 + 256 + 256 GB")
	assert.Contains(t, r.stdout, "TP=1 × PP=3 on 3 ranks", "64 heads do not split three ways: a pipeline")
	assert.Contains(t, r.stdout, "TP=4 × PP=1 on 4 ranks")

	r = runCmd(t, nil, kimiBin, "--plan-only", "--describe", "kimi-k2.5", "--pp", "3", "--nodes-gb", "512,256,256", "--json")
	require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
	var p loader.Placement
	for _, line := range strings.Split(r.stdout, "\n") {
		if s, ok := strings.CutPrefix(line, placementMarker); ok {
			require.NoError(t, json.Unmarshal([]byte(s), &struct {
				Stages *[]loader.Stage `json:"stages"`
				Layers *int            `json:"layers"`
			}{&p.Stages, &p.Layers}))
		}
	}
	require.Len(t, p.Stages, 3)
	total := 0
	for _, st := range p.Stages {
		total += st.Layers
		assert.LessOrEqual(t, st.Peak, st.Memory)
	}
	assert.Equal(t, 61, total)

	r = runCmd(t, nil, kimiBin, "--plan-only", "--describe", "kimi-k2.5", "--pp", "2", "--nodes-gb", "256,256")
	require.Equal(t, 0, r.code, "stderr:\n%s", r.stderr)
	assert.Contains(t, r.stdout, "refused: loader: no placement of 61 layers in 2 stages")
}

// TestAnswerAPromptOverTwoRanksAsGenerateDoes is the seed's model-loading
// test end to end: load over 2 ranks, then answer — with both tables, and
// the same greedy ids as examples/generate gives with the same settings.
func TestAnswerAPromptOverTwoRanksAsGenerateDoes(t *testing.T) {
	setup(t)
	s := ckptgen.KimiK25().Scale(1.0 / 32)
	s.Layers, s.FirstDense = 2, 1
	s.Experts, s.ActiveExperts = 8, 4
	s.Files = 2
	s.Dtype, s.Quant = "F32", nil // generation in float32 on the CPU
	dir := filepath.Join(workDir, "kimi-f32")
	_, err := ckptgen.Write(context.Background(), dir, s, nil)
	require.NoError(t, err)
	genBin := filepath.Join(workDir, "generate")
	if out, err := exec.Command("go", "build", "-o", genBin, "../generate").CombinedOutput(); err != nil {
		t.Fatalf("go build ../generate: %v\n%s", err, out)
	}
	const prompt = "What is 2+2? Answer in one sentence."

	r := runCmd(t, nil, launchBin, "-n", "2", "--", kimiBin, "--model", dir, "--prompt", prompt, "--max-tokens", "12", "--json")
	require.Equal(t, 0, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "Load results")
	assert.Contains(t, r.stdout, "Inference results")
	for _, row := range []string{"prompt TPS", "generation TPS", "tokens generated", "total inference time", "response"} {
		assert.Contains(t, r.stdout, row)
	}
	var ours inference
	for _, line := range strings.Split(r.stdout, "\n") {
		if i := strings.Index(line, inferenceMarker); i >= 0 {
			require.NoError(t, json.Unmarshal([]byte(line[i+len(inferenceMarker):]), &ours))
		}
	}
	require.NotEmpty(t, ours.GeneratedIDs, "no inference JSON in:\n%s", r.stdout)
	assert.Equal(t, 12, ours.Generated)

	g := runCmd(t, nil, launchBin, "-n", "2", "--", genBin, "--model", dir, "--prompt", prompt, "--max-tokens", "12", "--json")
	require.Equal(t, 0, g.code, "stdout:\n%s\nstderr:\n%s", g.stdout, g.stderr)
	var theirs struct {
		PromptIDs    []int `json:"prompt_ids"`
		GeneratedIDs []int `json:"generated_ids"`
	}
	for _, line := range strings.Split(g.stdout, "\n") {
		if i := strings.Index(line, "{"); i >= 0 && strings.Contains(line, "generated_ids") {
			require.NoError(t, json.Unmarshal([]byte(line[i:]), &theirs))
		}
	}
	assert.Equal(t, theirs.PromptIDs, ours.PromptIDs, "the same prompt encoding")
	assert.Equal(t, theirs.GeneratedIDs, ours.GeneratedIDs, "the same greedy tokens as examples/generate")

	bad := runCmd(t, nil, kimiBin, "--plan-only", "--describe", "kimi-k2.5", "--prompt", "hi")
	assert.Equal(t, 2, bad.code)
	assert.Contains(t, bad.stderr, "--prompt needs a load")
}
