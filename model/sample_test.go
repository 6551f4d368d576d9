package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

const samplerScript = `
import json, sys
import mlx.core as mx
from mlx_lm.sample_utils import make_sampler
lp = mx.load(sys.argv[1])["lp"]
temp, top_p, min_p, top_k, n = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
sampler = make_sampler(temp=temp, top_p=top_p, min_p=min_p, top_k=top_k)
mx.random.seed(5)
json.dump([sampler(lp).item() for _ in range(n)], open(sys.argv[2], "w"))
`

// TestTheSamplerDrawsMLXLMsTokensFromBfloat16Logprobs draws many tokens
// from one bfloat16 distribution of near ties, where a filter or a
// temperature computed in float32 instead of bfloat16 (Python's float next
// to a bfloat16 array stays bfloat16) moves the draws.
func TestTheSamplerDrawsMLXLMsTokensFromBfloat16Logprobs(t *testing.T) {
	requireMLX(t)
	const vocab, draws = 4096, 300
	rng := rand.New(rand.NewPCG(3, 4))
	raw := make([]float32, vocab)
	for i := range raw {
		raw[i] = float32(-8 + 0.05*rng.NormFloat64())
	}
	f, err := mlx.FromSlice(raw, 1, vocab)
	require.NoError(t, err)
	defer f.Free()
	lp, err := mlx.AsType(f, mlx.Bfloat16)
	require.NoError(t, err)
	defer lp.Free()
	dir := t.TempDir()
	in := filepath.Join(dir, "lp.safetensors")
	require.NoError(t, mlx.SaveSafetensors(in, map[string]*mlx.Array{"lp": lp}, nil))
	for _, o := range []Sampling{
		{Temp: 0.7},
		{Temp: 0.7, MinP: 0.9},
		{Temp: 1.3, TopK: 400},
		{Temp: 0.9, TopP: 0.5},
	} {
		t.Run(fmt.Sprintf("temp %g top-p %g min-p %g top-k %d", o.Temp, o.TopP, o.MinP, o.TopK), func(t *testing.T) {
			out := filepath.Join(dir, "ref.json")
			cmd := exec.Command(testenv.Python(t), "-c", samplerScript, in, out, fmt.Sprint(o.Temp), fmt.Sprint(o.TopP),
				fmt.Sprint(o.MinP), fmt.Sprint(o.TopK), fmt.Sprint(draws))
			b, err := cmd.CombinedOutput()
			require.NoError(t, err, string(b))
			b, err = os.ReadFile(out)
			require.NoError(t, err)
			var want []int
			require.NoError(t, json.Unmarshal(b, &want))

			require.NoError(t, mlx.RandomSeed(5))
			got := make([]int, draws)
			for i := range got {
				err := mlx.Do(func() error {
					s := &scope{}
					defer s.release()
					tok := s.sample(o, lp)
					if s.err != nil {
						return s.err
					}
					v, err := mlx.ToSlice[uint32](tok)
					if err != nil {
						return err
					}
					got[i] = int(v[0])
					return nil
				})
				require.NoError(t, err)
			}
			same := 0
			for i := range got {
				if got[i] == want[i] {
					same++
				}
			}
			assert.Equal(t, want, got, "%d of %d draws equal", same, draws)
		})
	}
}

// Greedy tokens under mlx-lm's logits processors, one at a time and all
// together: the same tokens, and the same log-probability of each, bit for
// bit, in float32 and in bfloat16 (whose scalars stay bfloat16).
func TestPenaltiesGiveMLXLMsTokensAndLogprobs(t *testing.T) {
	requireMLX(t)
	const tokens = 24
	for _, spec := range []string{"llama", "llama-bf16", "kimi-bf16"} {
		for _, tc := range []struct {
			name string
			p    Penalties
			kw   string
		}{
			{"repetition", Penalties{Repetition: 1.3}, `{"repetition_penalty": 1.3}`},
			{"presence over 8 tokens", Penalties{Presence: 0.7, PresenceContext: 8}, `{"presence_penalty": 0.7, "presence_context_size": 8}`},
			{"frequency", Penalties{Frequency: 0.4}, `{"frequency_penalty": 0.4}`},
			{"logit bias", Penalties{LogitBias: map[int]float64{7: 3.5, 300: -1.25, 12: 0.1}},
				`{"logit_bias": {"7": 3.5, "300": -1.25, "12": 0.1}}`},
			{"all together", Penalties{LogitBias: map[int]float64{5: 2}, Repetition: 1.1, RepetitionContext: 30, Presence: 0.3, Frequency: 0.2, FrequencyContext: 5},
				`{"logit_bias": {"5": 2}, "repetition_penalty": 1.1, "repetition_context_size": 30, "presence_penalty": 0.3, "frequency_penalty": 0.2, "frequency_context_size": 5}`},
		} {
			t.Run(spec+", "+tc.name, func(t *testing.T) {
				m := loadSpec(t, spec)
				dir := checkpoint(t, spec)
				// A prompt with repeats, so that the penalties have work.
				prompt := append(prompts(m.Config.VocabSize)[2], prompts(m.Config.VocabSize)[2][:6]...)
				out := filepath.Join(t.TempDir(), "ref.json")
				launch(t, 1, []string{testenv.Python(t), referencePath(t), "penalized", dir, out, fmt.Sprint(tokens), idsArg(prompt), tc.kw}, nil)
				b, err := os.ReadFile(out)
				require.NoError(t, err)
				var ref struct {
					IDs      []int     `json:"ids"`
					Logprobs []float32 `json:"logprobs"`
				}
				require.NoError(t, json.Unmarshal(b, &ref))
				got, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: tokens, Stop: []int{}, Penalties: tc.p}))
				require.NoError(t, err)
				ids := make([]int, len(got))
				lps := make([]float32, len(got))
				for i, tok := range got {
					ids[i], lps[i] = tok.ID, tok.Logprob
				}
				assert.Equal(t, ref.IDs, ids)
				assert.Equal(t, ref.Logprobs, lps)
			})
		}
	}
}
