package model

import (
	"errors"
	"fmt"

	"github.com/mlxdist/mlxdist/memguard"
)

// ErrContextTooLong is matched by a *ContextError.
var ErrContextTooLong = errors.New("model: the context would not fit in memory")

// ContextError refuses a generation whose KV cache and activations would
// not fit under the memory guard.
type ContextError struct {
	Plan InferencePlan
	// Err is the guard's *memguard.ExceededError.
	Err error
}

func (e *ContextError) Error() string {
	return fmt.Sprintf("model: a context of %d tokens needs %.2f GB more (KV cache %.2f GB, activations %.2f GB): %v; shorten the prompt or --max-tokens, or use more ranks",
		e.Plan.Context, float64(e.Plan.Total)/1e9, float64(e.Plan.KVCache)/1e9, float64(e.Plan.Activations)/1e9, e.Err)
}

// Is makes errors.Is(err, ErrContextTooLong) true.
func (e *ContextError) Is(target error) bool { return target == ErrContextTooLong }

// Unwrap gives the guard's error.
func (e *ContextError) Unwrap() error { return e.Err }

// InferencePlan is what running a context of a given length adds, on one
// rank, to the memory the loaded weights hold (the load plan's Resident):
// the KV cache, and the activations of the largest step.
type InferencePlan struct {
	Context int `json:"context"`
	// KVPerToken is the cache's bytes per token on this rank: for the
	// Llama family 2 × layers × kv_heads/N × head_dim, for DeepSeek-V3
	// layers × (kv_lora + rope), the same on every rank, times the
	// element size.
	KVPerToken int64 `json:"kv_bytes_per_token"`
	// KVCache is the cache's size for Context tokens, grown as mlx-lm's
	// KVCache grows it, in steps of 256 positions.
	KVCache int64 `json:"kv_cache"`
	// Activations estimates the largest step's transient arrays: a prefill
	// chunk's hidden states, its attention scores against the whole
	// context (materialised by MLX's CPU attention), its MLP
	// intermediates, and the logits.
	Activations int64 `json:"activations"`
	Total       int64 `json:"total"`
}

// PlanInference plans a context of n tokens, prefilled in chunks of
// prefillStep (0: DefaultPrefillStep), on one rank of ranks, with
// elemSize-byte activations and cache (4 for float32).
func (c *Config) PlanInference(n, prefillStep, ranks int, elemSize int64) InferencePlan {
	if prefillStep <= 0 {
		prefillStep = DefaultPrefillStep
	}
	ranks = max(ranks, 1)
	p := InferencePlan{Context: n}
	layers := int64(c.NumHiddenLayers)
	heads := int64(c.NumAttentionHeads / ranks)
	if c.Arch == DeepSeekV3 {
		p.KVPerToken = layers * int64(c.KVLoRARank+c.QKRopeHeadDim) * elemSize
	} else {
		p.KVPerToken = 2 * layers * int64(c.NumKeyValueHeads/ranks) * int64(c.HeadDim) * elemSize
	}
	capacity := int64((n + cacheStep - 1) / cacheStep * cacheStep)
	p.KVCache = p.KVPerToken * capacity
	t := int64(min(max(n-1, 1), prefillStep))
	ctx := int64(n)
	hidden := int64(c.HiddenSize)
	// MLX's CPU attention materialises the scores against the whole
	// context and their softmax, and the causal mask; DeepSeek-V3 adds its
	// positional scores and their masked copy, and keys and values
	// expanded from the latent. Measured peaks (TestPeakMemory...) sit at
	// 0.7-0.9 of this sum.
	var attn, mlp int64
	if c.Arch == DeepSeekV3 {
		attn = 4*heads*t*ctx + heads*ctx*int64(c.QKNopeHeadDim+c.VHeadDim) + heads*t*int64(c.QKNopeHeadDim+c.QKRopeHeadDim)
		inter := int64(c.IntermediateSize / ranks)
		if c.NRoutedExperts > 0 {
			moe := int64(c.NumExpertsPerTok) * int64(c.MoEIntermediateSize/ranks)
			inter = max(inter, moe+int64(c.MoEIntermediateSize*c.NSharedExperts/ranks))
			// the experts' outputs before they are weighted and summed
			mlp += int64(c.NumExpertsPerTok) * hidden * t
		}
		mlp += 3 * t * inter
	} else {
		attn = 3*heads*t*ctx + t*int64(c.NumAttentionHeads/ranks+2*c.NumKeyValueHeads/ranks)*int64(c.HeadDim)
		mlp = 3 * t * int64(c.IntermediateSize/ranks)
	}
	p.Activations = elemSize * (4*t*hidden + attn + mlp + int64(c.VocabSize))
	p.Total = p.KVCache + p.Activations
	return p
}

// checkContext refuses a generation whose plan does not fit under guard.
func checkContext(guard *memguard.Guard, p InferencePlan) error {
	if guard == nil {
		return nil
	}
	if err := guard.Fits(p.Total); err != nil {
		if errors.Is(err, memguard.ErrExceeded) {
			return &ContextError{Plan: p, Err: err}
		}
		return err
	}
	return nil
}

// PlanInference plans a context of n tokens for this model on this rank,
// with its activations' element size.
func (m *Model) PlanInference(n, prefillStep int) InferencePlan {
	return m.tp.stagePlan(m.Config.PlanInference(n, prefillStep, m.tp.size(), m.elemSize), m.Config.NumHiddenLayers)
}
