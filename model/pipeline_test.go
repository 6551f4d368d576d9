package model

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/safetensors"
)

// placeByShares places dir's model on ranks whose memory is in the given
// proportions ("2,1,1") of 1.2 times what the model's layers need (and
// room for the embeddings and head on every rank), so that the split
// follows the memory, with tp ranks per stage.
func placeByShares(dir, shares string, tpn int) (*loader.Placement, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	ts := d.Tensors()
	d.Close()
	whole, err := loader.NewPlan(ts, loader.PlanOptions{Rules: cfg.Rules()})
	if err != nil {
		return nil, err
	}
	var parts []int64
	var sum int64
	for _, f := range strings.Split(shares, ",") {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("share %q: %w", f, err)
		}
		parts = append(parts, n)
		sum += n
	}
	// The embeddings and head go to the ends whatever the memory: give
	// every rank room for them, and the layers in proportion.
	var edges int64
	for _, sp := range whole.Sections {
		if sp.Kind != loader.Block {
			edges += sp.Shard
		}
	}
	mem := make([]int64, len(parts))
	for i, n := range parts {
		mem[i] = edges + (whole.Resident-edges)*12/10*n/sum
	}
	return loader.Place(ts, loader.PlacementOptions{PlanOptions: loader.PlanOptions{Rules: cfg.Rules()}, Memory: mem, TP: tpn,
		TiedEmbeddings: cfg.TieWordEmbeddings})
}

// pipelineRun runs job ("logits" or "generate") on len(shares) ranks, the
// model placed by placeByShares, and returns the output file.
func pipelineRun(t *testing.T, dir, shares string, tpn int, env ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	n := len(strings.Split(shares, ","))
	launch(t, n, []string{os.Args[0]}, append(env, "MODEL_TEST_DIR="+dir, "MODEL_TEST_OUT="+out,
		"MODEL_TEST_PLACE="+shares, "MODEL_TEST_TP="+strconv.Itoa(tpn)))
	return out
}

// Pipelines over ring: the hidden states handed from stage to stage by
// send and recv, the last stage's logits shared with every rank. The ops
// are one rank's, in its order, so the logits are one rank's bit for bit,
// and within the parity tests' 1e-5 of mlx-lm's.
func TestPipelineLogitsEqualOneRanks(t *testing.T) {
	requireRing(t)
	for _, tc := range []struct {
		name, spec, shares string
	}{
		{"llama in two even stages", "llama-6", "1,1"},
		{"llama in three stages placed 2:1:1 by memory", "llama-6", "2,1,1"},
		{"llama in three even stages", "llama-6", "1,1,1"},
		{"qwen2 with tied embeddings in two stages", "qwen2", "1,1"},
		{"kimi k2.5 in two stages", "kimi", "1,1"},
		{"kimi k2.5 in three stages", "kimi", "1,1,1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := checkpoint(t, tc.spec)
			ps := prompts(specs[tc.spec].Vocab)
			ref := mlxlmLogits(t, dir, 1, ps)
			m, err := Load(context.Background(), dir, Options{})
			require.NoError(t, err)
			defer m.Free()
			var args []string
			for _, p := range ps {
				args = append(args, idsArg(p))
			}
			p, err := placeByShares(dir, tc.shares, 1)
			require.NoError(t, err)
			var layers []int
			for _, st := range p.Stages {
				layers = append(layers, st.Layers)
			}
			got := readLogits(t, pipelineRun(t, dir, tc.shares, 1, "MODEL_TEST_HELPER=logits", "MODEL_TEST_PROMPTS="+strings.Join(args, ";")), len(ps))
			for i, pr := range ps {
				one, err := m.Logits(context.Background(), pr)
				require.NoError(t, err)
				d, same := maxDiff(t, got[i], one)
				assert.True(t, same, "prompt of %d tokens: the pipeline's logits are one rank's bit for bit (max diff %g)", len(pr), d)
				dr, _ := maxDiff(t, got[i], ref[i])
				assert.LessOrEqual(t, dr, 1e-5, "prompt of %d tokens: max |pipeline − mlx-lm at TP=1| = %g", len(pr), dr)
				t.Logf("stages of %v layers, prompt of %2d tokens: vs one rank %.3g (bitwise %v), vs mlx-lm %.3g", layers, len(pr), d, same, dr)
			}
		})
	}
}

// Greedy generation through the pipeline: prefill in chunks and decode
// through every stage's cache give one rank's tokens.
func TestPipelineGreedyTokensEqualOneRanks(t *testing.T) {
	requireRing(t)
	const tokens = 24
	for _, tc := range []struct {
		name, spec, shares string
	}{
		{"llama in three stages placed 2:1:1 generates one rank's tokens", "llama-6", "2,1,1"},
		{"kimi k2.5 in two stages generates one rank's tokens", "kimi", "1,1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := checkpoint(t, tc.spec)
			prompt := prompts(specs[tc.spec].Vocab)[3]
			m, err := Load(context.Background(), dir, Options{})
			require.NoError(t, err)
			defer m.Free()
			var want []int
			for tok, err := range m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: tokens, Stop: []int{}, PrefillStep: 32}).Tokens() {
				require.NoError(t, err)
				want = append(want, tok.ID)
			}
			out := pipelineRun(t, dir, tc.shares, 1, "MODEL_TEST_HELPER=generate", "MODEL_TEST_PROMPTS="+idsArg(prompt),
				"MODEL_TEST_TOKENS="+strconv.Itoa(tokens), "MODEL_TEST_PREFILL=32")
			b, err := os.ReadFile(out)
			require.NoError(t, err)
			var r greedyRef
			require.NoError(t, json.Unmarshal(b, &r))
			assert.Equal(t, want, r.IDs, "greedy tokens")
		})
	}
}

// MLX's ring back-end cannot split a group, and a stage of TP ranks needs
// its own group to all-sum over: TP×PP over ring is refused at load, on
// every rank, with what to do instead.
func TestTensorParallelStagesOverRingAreRefusedWithTheWayOut(t *testing.T) {
	requireRing(t)
	dir := checkpoint(t, "llama-6")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]}, N: 4, Stdout: &out, Stderr: &out, Grace: 2 * time.Second,
		Env: []string{"MODEL_TEST_HELPER=logits", "MODEL_TEST_DIR=" + dir, "MODEL_TEST_OUT=" + filepath.Join(t.TempDir(), "out"),
			"MODEL_TEST_PROMPTS=1,2,3", "MODEL_TEST_PLACE=1,1,1,1", "MODEL_TEST_TP=2"},
	})
	require.Error(t, err, "TP=2 × PP=2 over ring")
	assert.Contains(t, out.String(), "TP=2 × PP=2 all-sums within each stage, which needs a split of the ring group: run PP=4 alone (TP=1) over ring")
}

func TestPlaceSizesEachStagesKVCacheForTheContext(t *testing.T) {
	dir := checkpoint(t, "llama-6")
	cfg, err := ReadConfig(dir)
	require.NoError(t, err)
	const ctxLen = 1000
	for _, tc := range []struct {
		name   string
		ranks  int
		tp, pp int
	}{
		{"two ranks split every layer", 2, 2, 1},
		{"three ranks, which four heads do not divide among, make a pipeline", 3, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := make([]int64, tc.ranks)
			for i := range mem {
				mem[i] = 1e9
			}
			p, err := Place(dir, mem, 0, ctxLen, loader.Direct)
			require.NoError(t, err)
			assert.Equal(t, tc.tp, p.TP)
			assert.Equal(t, tc.pp, p.PP)
			ip := cfg.PlanInference(ctxLen, 0, tc.tp, 4)
			for _, st := range p.Stages {
				assert.Equal(t, ip.KVCache/int64(cfg.NumHiddenLayers)*int64(st.Layers), st.KVCache, "stage %d", st.Index)
				assert.Equal(t, ip.Activations, st.Activations)
			}
		})
	}
	_, err = Place(dir, []int64{1e5, 1e5}, 1, ctxLen, loader.Direct)
	assert.ErrorIs(t, err, loader.ErrNoPlacement)
}
