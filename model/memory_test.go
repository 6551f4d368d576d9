package model

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
)

// The seed's open item "memory use for various prompts": the peak MLX
// memory of a generation, measured, against the weights plus the plan's
// KV cache and activations.
func TestPeakMemoryOfAGenerationStaysWithinThePlan(t *testing.T) {
	for _, spec := range []string{"llama", "kimi"} {
		m := loadSpec(t, spec)
		for _, n := range []int{8, 64, 300} {
			prompt := make([]int, n)
			for i := range prompt {
				prompt[i] = (i*7 + 3) % m.Config.VocabSize
			}
			require.NoError(t, mlx.ClearCache())
			weights, err := mlx.ActiveMemory()
			require.NoError(t, err)
			gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 4, Stop: []int{}})
			_, err = collect(t, gen)
			require.NoError(t, err)
			plan := m.PlanInference(n+4, 0)
			peak := int64(gen.Stats().PeakMemory) - int64(weights)
			t.Logf("%s, prompt %3d: peak above the weights %8d B; plan %8d B (KV cache %d, activations %d); measured/plan %.2f",
				spec, n, peak, plan.Total, plan.KVCache, plan.Activations, float64(peak)/float64(plan.Total))
			assert.LessOrEqual(t, peak, plan.Total, "%s, prompt of %d: the plan bounds the peak", spec, n)
			assert.GreaterOrEqual(t, peak, plan.KVCache, "%s, prompt of %d: the cache alone is part of the peak", spec, n)
			if n == 300 {
				assert.GreaterOrEqual(t, float64(peak)/float64(plan.Total), 0.5, "%s, prompt of %d: the plan is not wildly above the peak", spec, n)
			}
		}
	}
}

func TestAContextThatWouldNotFitIsRefused(t *testing.T) {
	m := loadSpec(t, "llama")
	used, err := mlx.ActiveMemory()
	require.NoError(t, err)
	plan := m.PlanInference(5+1000, 0)
	// A machine with room for the weights and half the plan.
	guard, err := memguard.New(memguard.WithPhysical(used+int64(plan.Total)/2), memguard.WithHeadroom(0),
		memguard.WithUsed("active", mlx.ActiveMemory))
	require.NoError(t, err)
	_, err = collect(t, m.Generate(context.Background(), []int{1, 2, 3, 4, 5}, GenerateOptions{MaxTokens: 1000, Guard: guard}))
	require.ErrorIs(t, err, ErrContextTooLong)
	var ce *ContextError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 1005, ce.Plan.Context)
	assert.ErrorIs(t, err, memguard.ErrExceeded)
	assert.Contains(t, err.Error(), "shorten the prompt")

	got, err := collect(t, m.Generate(context.Background(), []int{1, 2, 3, 4, 5}, GenerateOptions{MaxTokens: 2, Guard: guard, Stop: []int{}}))
	require.NoError(t, err, "a short context fits")
	assert.Len(t, got, 2)
}
