package model

import (
	"fmt"
	"math"

	"github.com/mlxdist/mlxdist/mlx"
)

// Sampling chooses the next token from log-probabilities as mlx-lm's
// make_sampler does: Temp 0 is greedy (argmax); otherwise the filters that
// are set — TopP (nucleus, 0 < p < 1), MinP (relative to the best token's
// probability), TopK — run in that order and a token is drawn from what is
// left at the temperature. Seed, when not nil, seeds MLX's global random
// state first, as mlx_lm generate --seed does; every rank of a group must
// use the same seed so that they all draw the same token.
type Sampling struct {
	Temp float64
	TopP float64
	MinP float64
	// MinTokensToKeep is how many tokens MinP always keeps; 0 means 1.
	MinTokensToKeep int
	TopK            int
	Seed            *uint64
}

func (o Sampling) validate(vocab int) error {
	switch {
	case o.Temp < 0 || math.IsNaN(o.Temp):
		return fmt.Errorf("model: temperature %v is negative: use 0 for greedy decoding", o.Temp)
	case o.TopP < 0 || o.TopP > 1:
		return fmt.Errorf("model: top-p %v is outside [0, 1]", o.TopP)
	case o.MinP < 0 || o.MinP > 1:
		return fmt.Errorf("model: min-p %v is outside [0, 1]", o.MinP)
	case o.TopK < 0 || (o.TopK > 0 && o.TopK >= vocab):
		return fmt.Errorf("model: top-k %d is outside 0..%d (0 turns it off)", o.TopK, vocab-1)
	case o.MinTokensToKeep < 0:
		return fmt.Errorf("model: min tokens to keep %d is negative", o.MinTokensToKeep)
	}
	return nil
}

// sample maps logprobs [1, vocab] to the chosen token [1].
func (s *scope) sample(o Sampling, logprobs *mlx.Array) *mlx.Array {
	if o.Temp == 0 {
		return s.do(func() (*mlx.Array, error) { return mlx.Argmax(logprobs, -1, false) })
	}
	x := logprobs
	if o.TopP > 0 && o.TopP < 1 {
		x = s.topP(x, o.TopP)
	}
	if o.MinP != 0 {
		x = s.minP(x, o.MinP, max(o.MinTokensToKeep, 1))
	}
	if o.TopK > 0 {
		x = s.topK(x, o.TopK)
	}
	x = s.mul(x, s.like(1/o.Temp, x))
	return s.do(func() (*mlx.Array, error) { return mlx.RandomCategorical(x, -1, nil) })
}

// negInf is -inf next to logprobs, in its dtype, as Python's -float("inf")
// and mlx-lm's mx.array(-inf, logprobs.dtype) are.
func (s *scope) negInf(logprobs *mlx.Array) *mlx.Array { return s.like(math.Inf(-1), logprobs) }

// topP is mlx-lm's apply_top_p.
func (s *scope) topP(logprobs *mlx.Array, p float64) *mlx.Array {
	sorted := s.do(func() (*mlx.Array, error) { return mlx.Sort(logprobs, -1) })
	probs := s.do(func() (*mlx.Array, error) { return mlx.Exp(s.astype(sorted, mlx.Float32)) })
	above := s.do(func() (*mlx.Array, error) { return mlx.Cumsum(probs, -1, true, false) })
	total := s.add(s.lastSlice(above, 0, 1), s.lastSlice(probs, 0, 1))
	dropped := s.sum(s.greaterEqual(above, s.mul(s.f32(p), total)), true, -1)
	threshold := s.takeAlong(sorted, dropped, -1)
	return s.where(s.less(logprobs, threshold), s.negInf(logprobs), logprobs)
}

// minP is mlx-lm's apply_min_p.
func (s *scope) minP(logprobs *mlx.Array, p float64, keep int) *mlx.Array {
	top := s.do(func() (*mlx.Array, error) { return mlx.Max(logprobs, true, -1) })
	remove := s.less(logprobs, s.add(top, s.like(math.Log(p), top)))
	if keep > 1 && s.err == nil {
		n := logprobs.Shape()[logprobs.Ndim()-1]
		idx := s.lastSlice(s.argpartition(logprobs, n-keep, -1), n-keep, n)
		f := s.do(func() (*mlx.Array, error) { return mlx.Scalar(false) })
		remove = s.putAlong(remove, idx, f, -1)
	}
	return s.where(remove, s.negInf(logprobs), logprobs)
}

// topK is mlx-lm's apply_top_k.
func (s *scope) topK(logprobs *mlx.Array, k int) *mlx.Array {
	if s.err != nil {
		return nil
	}
	n := logprobs.Shape()[logprobs.Ndim()-1]
	idx := s.lastSlice(s.argpartition(s.neg(logprobs), k-1, -1), k, n)
	return s.putAlong(logprobs, idx, s.negInf(logprobs), -1)
}
