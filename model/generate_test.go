package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

func loadSpec(t testing.TB, name string) *Model {
	t.Helper()
	requireMLX(t)
	m, err := Load(context.Background(), checkpoint(t, name), Options{})
	require.NoError(t, err)
	t.Cleanup(m.Free)
	return m
}

func collect(t *testing.T, gen *Generation) ([]Token, error) {
	t.Helper()
	var out []Token
	for tok, err := range gen.Tokens() {
		if err != nil {
			return out, err
		}
		out = append(out, tok)
	}
	return out, nil
}

func TestGenerationStopsWhereItShould(t *testing.T) {
	m := loadSpec(t, "llama")
	prompt := prompts(m.Config.VocabSize)[1]
	free, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 8, Stop: []int{}}))
	require.NoError(t, err)
	require.Len(t, free, 8)

	t.Run("a stop token ends the generation after it is yielded", func(t *testing.T) {
		gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 8, Stop: []int{free[2].ID}})
		got, err := collect(t, gen)
		require.NoError(t, err)
		stopAt := 0
		for stopAt < len(free) && free[stopAt].ID != free[2].ID {
			stopAt++
		}
		assert.Len(t, got, stopAt+1)
		assert.Equal(t, "stop", gen.Stats().StopReason)
	})
	t.Run("a consumer that breaks leaves the model usable at once", func(t *testing.T) {
		gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 8, Stop: []int{}})
		for range gen.Tokens() {
			break
		}
		assert.Equal(t, "cancelled", gen.Stats().StopReason)
		again, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 8, Stop: []int{}}))
		require.NoError(t, err)
		assert.Equal(t, free, again, "the same greedy tokens after an interrupted generation")
	})
	t.Run("a halt asked while token n is yielded ends the generation after token n+1", func(t *testing.T) {
		seen := 0
		gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 8, Stop: []int{},
			Halt: func() bool { return seen > 2 }})
		var got []Token
		for tok, err := range gen.Tokens() {
			require.NoError(t, err)
			got = append(got, tok)
			seen++
		}
		assert.Equal(t, free[:4], got)
		assert.Equal(t, "halted", gen.Stats().StopReason)
		assert.Equal(t, 4, gen.Stats().GeneratedTokens)
		again, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 8, Stop: []int{}}))
		require.NoError(t, err)
		assert.Equal(t, free, again, "the same greedy tokens after a halted generation")
	})
	t.Run("a cancelled context ends the generation with its error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		gen := m.Generate(ctx, prompt, GenerateOptions{MaxTokens: 8, Stop: []int{}})
		n := 0
		var last error
		for _, err := range gen.Tokens() {
			if err != nil {
				last = err
				break
			}
			n++
			if n == 2 {
				cancel()
			}
		}
		assert.ErrorIs(t, last, context.Canceled)
		assert.Equal(t, 2, n)
	})
	t.Run("max tokens bounds the generation and the figures are filled", func(t *testing.T) {
		gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 3, Stop: []int{}})
		got, err := collect(t, gen)
		require.NoError(t, err)
		assert.Len(t, got, 3)
		st := gen.Stats()
		assert.Equal(t, "length", st.StopReason)
		assert.Equal(t, len(prompt), st.PromptTokens)
		assert.Equal(t, 3, st.GeneratedTokens)
		assert.Greater(t, st.PromptTPS, 0.0)
		assert.Greater(t, st.GenerationTPS, 0.0)
		assert.Positive(t, st.TimeToFirstToken)
		assert.Greater(t, st.PeakMemory, int64(0))
	})
}

func TestLogprobsAreANormalisedDistribution(t *testing.T) {
	m := loadSpec(t, "qwen2")
	prompt := prompts(m.Config.VocabSize)[1]
	got, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 2, Stop: []int{}, Logprobs: true}))
	require.NoError(t, err)
	for _, tok := range got {
		require.Len(t, tok.Logprobs, m.Config.VocabSize)
		var sum float64
		best := 0
		for i, lp := range tok.Logprobs {
			sum += math.Exp(float64(lp))
			if lp > tok.Logprobs[best] {
				best = i
			}
		}
		assert.InDelta(t, 1, sum, 1e-4, "probabilities sum to one")
		assert.Equal(t, best, tok.ID, "greedy picks the most likely token")
		assert.Equal(t, tok.Logprobs[tok.ID], tok.Logprob)
	}
}

func TestSamplingOptions(t *testing.T) {
	m := loadSpec(t, "llama")
	prompt := prompts(m.Config.VocabSize)[1]
	run := func(s Sampling) []int {
		t.Helper()
		got, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 6, Stop: []int{}, Sampling: s}))
		require.NoError(t, err)
		ids := make([]int, len(got))
		for i, tok := range got {
			ids[i] = tok.ID
		}
		return ids
	}
	seed := func(v uint64) *uint64 { return &v }
	greedy := run(Sampling{})
	t.Run("top-k 1 at any temperature is greedy", func(t *testing.T) {
		assert.Equal(t, greedy, run(Sampling{Temp: 5, TopK: 1, Seed: seed(1)}))
	})
	t.Run("a tiny top-p keeps only the best token", func(t *testing.T) {
		assert.Equal(t, greedy, run(Sampling{Temp: 5, TopP: 1e-6, Seed: seed(2)}))
	})
	t.Run("min-p 1 keeps only the best token", func(t *testing.T) {
		assert.Equal(t, greedy, run(Sampling{Temp: 5, MinP: 1, Seed: seed(3)}))
	})
	t.Run("the same seed draws the same tokens and another seed others", func(t *testing.T) {
		a := run(Sampling{Temp: 2, Seed: seed(4)})
		assert.Equal(t, a, run(Sampling{Temp: 2, Seed: seed(4)}))
		assert.NotEqual(t, a, run(Sampling{Temp: 2, Seed: seed(5)}), "hot sampling over 1024 tokens differs between seeds")
	})
	t.Run("bad options are refused with what to do", func(t *testing.T) {
		for _, s := range []Sampling{{Temp: -1}, {TopP: 2}, {MinP: -0.1}, {TopK: m.Config.VocabSize}} {
			_, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 1, Sampling: s}))
			assert.Error(t, err, "%+v", s)
		}
	})
}

func TestForwardFreesEveryIntermediate(t *testing.T) {
	m := loadSpec(t, "kimi")
	prompt := prompts(m.Config.VocabSize)[3]
	// One run to settle MLX's caches, then the measured one.
	_, err := m.Logits(context.Background(), prompt)
	require.NoError(t, err)
	require.NoError(t, mlx.ClearCache())
	before, err := mlx.ActiveMemory()
	require.NoError(t, err)
	_, err = m.Logits(context.Background(), prompt)
	require.NoError(t, err)
	gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 4, Stop: []int{}})
	_, err = collect(t, gen)
	require.NoError(t, err)
	require.NoError(t, mlx.ClearCache())
	after, err := mlx.ActiveMemory()
	require.NoError(t, err)
	assert.Equal(t, before, after, "a forward pass and a generation leave nothing allocated")
}

// With the same seed, mlx-lm's make_sampler draws the same tokens: the same
// filters in the same order, and MLX's random state split in the same order
// (step n+1's draw is made while step n is read, as generate_step does).
func TestSeededSamplingDrawsMLXLMsTokens(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		s          Sampling
	}{
		{"plain temperature sampling draws mlx-lm's tokens", "llama", Sampling{Temp: 1.5}},
		{"top-p, min-p and top-k sampling draw mlx-lm's tokens", "llama", Sampling{Temp: 1.5, TopP: 0.9, MinP: 0.05, TopK: 50}},
		// In bfloat16 the filters' scalars must stay bfloat16, as Python's.
		{"in bfloat16, top-p, min-p and top-k sampling draw mlx-lm's tokens", "llama-bf16", Sampling{Temp: 0.7, TopP: 0.9, MinP: 0.05, TopK: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := loadSpec(t, tc.spec)
			dir := checkpoint(t, tc.spec)
			prompt := prompts(m.Config.VocabSize)[2]
			seed := uint64(11)
			tc.s.Seed = &seed
			out := filepath.Join(t.TempDir(), "sample.json")
			launch(t, 1, []string{testenv.Python(t), referencePath(t), "sample", dir, out, "16", idsArg(prompt), "11",
				fmt.Sprint(tc.s.Temp), fmt.Sprint(tc.s.TopP), fmt.Sprint(tc.s.MinP), fmt.Sprint(tc.s.TopK)}, nil)
			b, err := os.ReadFile(out)
			require.NoError(t, err)
			var ref greedyRef
			require.NoError(t, json.Unmarshal(b, &ref))
			got, err := collect(t, m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 16, Stop: []int{}, Sampling: tc.s}))
			require.NoError(t, err)
			ids := make([]int, len(got))
			for i, tok := range got {
				ids[i] = tok.ID
			}
			assert.Equal(t, ref.IDs, ids)
		})
	}
}
