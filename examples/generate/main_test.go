//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

func TestBadFlagsGiveOneLineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no model is refused", []string{"--prompt-ids", "1"}, "--model"},
		{"no prompt is refused", []string{"--model", "x"}, "exactly one"},
		{"both prompts are refused", []string{"--model", "x", "--prompt", "hi", "--prompt-ids", "1"}, "exactly one"},
		{"malformed ids are refused", []string{"--model", "x", "--prompt-ids", "1,a"}, "--prompt-ids"},
		{"a negative token budget is refused", []string{"--model", "x", "--prompt-ids", "1", "--max-tokens", "-1"}, "--max-tokens"},
		{"zero trials are refused", []string{"--model", "x", "--prompt-ids", "1", "--trials", "0"}, "--trials"},
		{"a placement other than auto is refused", []string{"--model", "x", "--prompt-ids", "1", "--placement", "even"}, "--placement"},
		{"auto placement with a fixed PP is refused", []string{"--model", "x", "--prompt-ids", "1", "--placement", "auto", "--pp", "2"}, "drop --tp and --pp"},
		{"a TP degree without stages is refused", []string{"--model", "x", "--prompt-ids", "1", "--tp", "2"}, "--tp N needs --pp M"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(tc.args, &bytes.Buffer{}, &stderr)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr.String(), tc.want)
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %q", stderr.String())
		})
	}
}

type jsonOut struct {
	PromptIDs     []int   `json:"prompt_ids"`
	GeneratedIDs  []int   `json:"generated_ids"`
	Text          string  `json:"text"`
	PromptTPS     float64 `json:"prompt_tps"`
	GenerationTPS float64 `json:"generation_tps"`
	PeakMemoryGB  float64 `json:"peak_memory_gb"`
	Ranks         int     `json:"ranks"`
}

// parseJSON finds rank 0's JSON line in the output of a run, with or
// without the launcher's rank prefix.
func parseJSON(t *testing.T, out string) jsonOut {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimPrefix(l, "[0] ")
		if strings.HasPrefix(l, "{") {
			var j jsonOut
			require.NoError(t, json.Unmarshal([]byte(l), &j), l)
			return j
		}
	}
	t.Fatalf("no JSON line in %q", out)
	return jsonOut{}
}

// One rank and two ranks over ring generate the same greedy tokens from a
// float32 Llama, and --logits writes [prompt_len, vocab].
func TestOneAndTwoRanksGenerateTheSameTokens(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not available: %v", err)
	}
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		testenv.Unavailable(t, "MLX has no ring back-end: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "llama")
	_, err := ckptgen.Write(context.Background(), dir, ckptgen.Spec{ModelType: ckptgen.LlamaType, Vocab: 1024, Hidden: 128,
		Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, Intermediate: 256, Dtype: "F32", Files: 1}, nil)
	require.NoError(t, err)
	bin := testenv.GoBuild(t, ".")
	launch := testenv.GoBuild(t, "../launch")
	logits := filepath.Join(t.TempDir(), "logits.safetensors")
	args := []string{"--model", dir, "--prompt-ids", "5,300,7,1000,42", "--max-tokens", "12", "--json"}

	one, err := exec.Command(bin, append(args, "--logits", logits, "--trials", "2")...).CombinedOutput()
	require.NoError(t, err, "%s", one)
	two, err := exec.Command(launch, append([]string{"-n", "2", "--", bin}, args...)...).CombinedOutput()
	require.NoError(t, err, "%s", two)

	assert.Equal(t, 2, strings.Count(string(one), "{\"generated_ids\""), "one JSON line per trial: %s", one)
	a, b := parseJSON(t, string(one)), parseJSON(t, string(two))
	assert.Equal(t, []int{5, 300, 7, 1000, 42}, a.PromptIDs)
	assert.Len(t, a.GeneratedIDs, 12)
	assert.Equal(t, a.GeneratedIDs, b.GeneratedIDs, "TP=2 generates TP=1's greedy tokens")
	assert.Equal(t, 1, a.Ranks)
	assert.Equal(t, 2, b.Ranks)
	for _, j := range []jsonOut{a, b} {
		assert.Positive(t, j.PromptTPS)
		assert.Positive(t, j.GenerationTPS)
		assert.Positive(t, j.PeakMemoryGB)
	}

	// A text prompt goes through the checkpoint's byte-level tokenizer
	// (no chat template: encoded as is), and the text is the tokens
	// decoded.
	txt, err := exec.Command(bin, "--model", dir, "--prompt", "hello", "--max-tokens", "4", "--json").CombinedOutput()
	require.NoError(t, err, "%s", txt)
	j := parseJSON(t, string(txt))
	assert.Equal(t, []int{'h', 'e', 'l', 'l', 'o'}, j.PromptIDs)
	assert.Len(t, j.GeneratedIDs, 4)
	assert.NotEmpty(t, j.Text)

	f, err := safetensors.Open(logits)
	require.NoError(t, err)
	defer f.Close()
	info, ok := f.Tensor("logits")
	require.True(t, ok)
	assert.Equal(t, safetensors.F32, info.Dtype)
	assert.Equal(t, []int64{5, 1024}, info.Shape)
}

func TestATextPromptWithoutATokenizerSaysWhatToDoInstead(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--model", t.TempDir(), "--prompt", "hello", "--max-tokens", "1"}, &bytes.Buffer{}, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "--prompt-ids")
}

// Pipelines of two and three stages, and of two stages of two ranks, over
// ring generate one rank's greedy tokens, and rank 0 prints the placement.
func TestPipelinesGenerateOneRanksTokens(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX is not available: %v", err)
	}
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		testenv.Unavailable(t, "MLX has no ring back-end: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "llama")
	_, err := ckptgen.Write(context.Background(), dir, ckptgen.Spec{ModelType: ckptgen.LlamaType, Vocab: 1024, Hidden: 128,
		Layers: 6, Heads: 4, KVHeads: 2, HeadDim: 32, Intermediate: 256, Dtype: "F32", Files: 2}, nil)
	require.NoError(t, err)
	bin := testenv.GoBuild(t, ".")
	launch := testenv.GoBuild(t, "../launch")
	args := []string{"--model", dir, "--prompt-ids", "5,300,7,1000,42", "--max-tokens", "12", "--json"}
	one, err := exec.Command(bin, args...).CombinedOutput()
	require.NoError(t, err, "%s", one)
	want := parseJSON(t, string(one)).GeneratedIDs
	require.Len(t, want, 12)
	for _, tc := range []struct {
		name  string
		ranks string
		flags []string
		table string
	}{
		{"two stages", "2", []string{"--pp", "2"}, "TP=1 × PP=2 on 2 ranks"},
		{"three stages", "3", []string{"--pp", "3"}, "TP=1 × PP=3 on 3 ranks"},
		{"two stages of two ranks", "4", []string{"--tp", "2", "--pp", "2"}, "TP=2 × PP=2 on 4 ranks"},
		{"three ranks placed automatically, where four heads do not split three ways", "3", []string{"--placement", "auto"}, "TP=1 × PP=3 on 3 ranks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(launch, append(append([]string{"-n", tc.ranks, "--", bin}, args...), tc.flags...)...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), tc.table)
			assert.Equal(t, want, parseJSON(t, string(out)).GeneratedIDs, "the pipeline generates one rank's greedy tokens")
		})
	}
}
