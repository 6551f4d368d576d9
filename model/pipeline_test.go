package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl"
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
		{"4-bit kimi k2.5 in bfloat16 in two stages", "kimi-bf16", "1,1"},
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

// Stages of several ranks over ring, which cannot split the group: each
// stage sums over its ranks by neighbour exchanges. At TP=2 the sum is the
// ring all-sum's bit for bit, so the logits are TP=2's alone; at TP=3 the
// chain adds in another order than the ring. Either way they are within
// the parity tests' 1e-5 of one rank's.
func TestTensorParallelStagesOverRingEqualTensorParallelAlone(t *testing.T) {
	requireRing(t)
	for _, tc := range []struct {
		name, spec, shares string
		tp                 int
		bitwise            bool
		env                []string
	}{
		{"llama at TP=2 × PP=2", "llama-6", "1,1,1,1", 2, true, nil},
		{"kimi k2.5 at TP=2 × PP=2", "kimi", "1,1,1,1", 2, true, nil},
		// Six local ranks share the machine's memory: the guard's default
		// headroom would leave each nothing.
		{"qwen3 at TP=3 × PP=2", "qwen3", "1,1,1,1,1,1", 3, false, []string{"MLX_MEMORY_GUARD_GB=0.5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := checkpoint(t, tc.spec)
			ps := prompts(specs[tc.spec].Vocab)
			m, err := Load(context.Background(), dir, Options{})
			require.NoError(t, err)
			defer m.Free()
			alone := oursLogits(t, dir, tc.tp, ps)
			var args []string
			for _, p := range ps {
				args = append(args, idsArg(p))
			}
			got := readLogits(t, pipelineRun(t, dir, tc.shares, tc.tp, append(tc.env, "MODEL_TEST_HELPER=logits", "MODEL_TEST_PROMPTS="+strings.Join(args, ";"))...), len(ps))
			for i, pr := range ps {
				d, same := maxDiff(t, got[i], alone[i])
				if tc.bitwise {
					assert.True(t, same, "prompt of %d tokens: the stages' logits are TP=%d's alone bit for bit (max diff %g)", len(pr), tc.tp, d)
				}
				assert.LessOrEqual(t, d, 1e-5, "prompt of %d tokens: max |TP×PP − TP=%d alone| = %g", len(pr), tc.tp, d)
				one, err := m.Logits(context.Background(), pr)
				require.NoError(t, err)
				d1, _ := maxDiff(t, got[i], one)
				assert.LessOrEqual(t, d1, 1e-5, "prompt of %d tokens: max |TP×PP − one rank| = %g", len(pr), d1)
				t.Logf("prompt of %2d tokens: vs TP=%d alone %.3g (bitwise %v), vs one rank %.3g", len(pr), tc.tp, d, same, d1)
			}
		})
	}
}

// Greedy generation through stages of two ranks: a chunked prefill and
// the decode through every stage's cache give one rank's tokens.
func TestTensorParallelStagesOverRingGenerateOneRanksTokens(t *testing.T) {
	requireRing(t)
	const tokens = 24
	for _, tc := range []struct{ name, spec string }{
		{"llama at TP=2 × PP=2", "llama-6"},
		{"kimi k2.5 at TP=2 × PP=2", "kimi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := checkpoint(t, tc.spec)
			prompt := prompts(specs[tc.spec].Vocab)[3]
			assert.Equal(t, greedy(t, dir, prompt, tokens, 32), pipelineGreedy(t, dir, "1,1,1,1", 2, prompt, tokens, 32), "greedy tokens")
		})
	}
}

// A stage's sum over 16 MB parts (4096 × 1024 float32), more than
// loopback's socket buffers hold: two ranks that both sent first would
// wait for ever (they do from about 6 MB on Linux, far less on macOS). The
// chain orders each exchange by rank, and every rank ends with its
// stage's parts added in the chain's order, bit for bit: two stages of two
// ranks exchanging at once, and one stage of four, whose middle ranks both
// receive and send each way.
func TestStageSumsOverRingExchangePartsLargerThanSocketBuffers(t *testing.T) {
	requireRing(t)
	for _, tc := range []struct {
		name string
		tp   int
	}{
		{"two stages of two ranks", 2},
		{"one stage of four ranks", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			launch(t, 4, []string{os.Args[0]}, []string{"MODEL_TEST_HELPER=chainsum", "MODEL_TEST_TP=" + strconv.Itoa(tc.tp), "MODEL_TEST_ROWS=4096"})
		})
	}
}

// A long prompt through stages of two ranks, prefilled in one chunk: each
// within-stage exchange carries 600 positions of 512 float32 (1.2 MB).
func TestTensorParallelStagesOverRingPrefillALongPrompt(t *testing.T) {
	requireRing(t)
	dir := checkpoint(t, "llama-wide")
	rng := rand.New(rand.NewPCG(5, 6))
	prompt := make([]int, 600)
	for i := range prompt {
		prompt[i] = rng.IntN(specs["llama-wide"].Vocab)
	}
	const tokens = 3
	assert.Equal(t, greedy(t, dir, prompt, tokens, len(prompt)), pipelineGreedy(t, dir, "1,1,1,1", 2, prompt, tokens, len(prompt)), "greedy tokens")
}

// A pipeline hands the hidden states on by send and recv, which MLX's nccl
// back-end lacks: it is refused before anything is loaded, with the way
// out. (This MLX build has no nccl back-end to launch; the refusal is the
// check Load makes of the group's back-end.)
func TestPipelinesTheBackEndCannotRunAreRefusedWithTheWayOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tp, pp  int
		backend jaccl.Backend
		want    string
	}{
		{"two stages over nccl", 1, 2, jaccl.NCCL, "PP=2 hands the hidden states from stage to stage by send and recv, which MLX's nccl back-end does not have: run TP=2 alone over nccl, or launch with mpi or ring"},
		{"two stages of two ranks over nccl", 2, 2, jaccl.NCCL, "run TP=4 alone over nccl"},
		{"tensor parallelism alone over nccl", 4, 1, jaccl.NCCL, ""},
		{"two stages of two ranks over ring", 2, 2, jaccl.Ring, ""},
		{"two stages of two ranks over jaccl", 2, 2, jaccl.JACCL, ""},
		{"two stages of two ranks over mpi", 2, 2, jaccl.MPI, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkBackend(&loader.Placement{WorldSize: tc.tp * tc.pp, TP: tc.tp, PP: tc.pp}, tc.backend)
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// greedy returns one rank's greedy tokens for prompt.
func greedy(t *testing.T, dir string, prompt []int, tokens, prefill int) []int {
	t.Helper()
	m, err := Load(context.Background(), dir, Options{})
	require.NoError(t, err)
	defer m.Free()
	var ids []int
	for tok, err := range m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: tokens, Stop: []int{}, PrefillStep: prefill}).Tokens() {
		require.NoError(t, err)
		ids = append(ids, tok.ID)
	}
	return ids
}

// pipelineGreedy returns the greedy tokens of the model placed by shares
// with tpn ranks per stage.
func pipelineGreedy(t *testing.T, dir, shares string, tpn int, prompt []int, tokens, prefill int) []int {
	t.Helper()
	out := pipelineRun(t, dir, shares, tpn, "MODEL_TEST_HELPER=generate", "MODEL_TEST_PROMPTS="+idsArg(prompt),
		"MODEL_TEST_TOKENS="+strconv.Itoa(tokens), "MODEL_TEST_PREFILL="+strconv.Itoa(prefill))
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var r greedyRef
	require.NoError(t, json.Unmarshal(b, &r))
	return r.IDs
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
