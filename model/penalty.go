package model

import (
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/mlxdist/mlxdist/mlx"
)

// DefaultPenaltyContext is how many of the latest tokens a penalty looks
// at when its context is 0, as in mlx-lm.
const DefaultPenaltyContext = 20

// Penalties are mlx-lm's logits processors (make_logits_processors),
// applied to each step's logits in its order — logit bias, repetition,
// presence, frequency — with the same MLX ops, so that the tokens and
// log-probabilities stay mlx-lm's. The tokens a penalty looks at are the
// prompt's and the generated ones, the latest Context of them. A zero
// penalty is off, as is a repetition penalty of 1.
type Penalties struct {
	// LogitBias is added to the logits of its token ids.
	LogitBias map[int]float64
	// Repetition divides a positive logit of a token seen lately by it and
	// multiplies a negative one (mlx-lm's repetition_penalty).
	Repetition        float64
	RepetitionContext int
	// Presence is subtracted once from the logit of every token seen
	// lately (OpenAI's presence_penalty).
	Presence        float64
	PresenceContext int
	// Frequency is subtracted from a token's logit once for every time it
	// was seen lately (OpenAI's frequency_penalty).
	Frequency        float64
	FrequencyContext int
}

func (p Penalties) active() bool {
	return len(p.LogitBias) > 0 || p.window() > 0
}

// penaltyWindow is a penalty's window: 0 when the penalty is off.
func penaltyWindow(penalty float64, n int) int {
	if penalty == 0 {
		return 0
	}
	if n == 0 {
		return DefaultPenaltyContext
	}
	return n
}

// window is how many of the latest tokens the penalties need.
func (p Penalties) window() int {
	return max(penaltyWindow(p.Repetition, p.RepetitionContext), penaltyWindow(p.Presence, p.PresenceContext),
		penaltyWindow(p.Frequency, p.FrequencyContext))
}

func (p Penalties) validate(vocab int) error {
	for _, v := range []struct {
		name string
		x    float64
		n    int
	}{{"repetition", p.Repetition, p.RepetitionContext}, {"presence", p.Presence, p.PresenceContext},
		{"frequency", p.Frequency, p.FrequencyContext}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("model: %s penalty %v is not a number", v.name, v.x)
		}
		if v.n < 0 {
			return fmt.Errorf("model: %s penalty context %d is negative", v.name, v.n)
		}
	}
	if p.Repetition < 0 {
		return fmt.Errorf("model: repetition penalty %v is negative", p.Repetition)
	}
	for id, b := range p.LogitBias {
		if id < 0 || id >= vocab {
			return fmt.Errorf("model: logit bias for token %d, outside the vocabulary of %d", id, vocab)
		}
		if math.IsNaN(b) {
			return fmt.Errorf("model: logit bias for token %d is not a number", id)
		}
	}
	return nil
}

// history is the tokens the penalties look at after in, the step's input:
// the prompt's latest at the first step, then the previous history and
// the previous step's token, cut to the window; nil when no penalty needs
// one.
func (g *Generation) history(s *scope, in input) *mlx.Array {
	w := g.o.Penalties.window()
	if w == 0 || s.err != nil {
		return nil
	}
	if in.token == nil {
		ids := g.prompt[max(len(g.prompt)-w, 0):]
		return s.reshape(s.ids(ids), len(ids))
	}
	h := s.concat([]*mlx.Array{in.hist, s.reshape(in.token, 1)}, 0)
	if s.err != nil {
		return nil
	}
	if n := h.Shape()[0]; n > w {
		h = s.slice(h, []int{n - w}, []int{n})
	}
	return h
}

// apply runs the penalties over logits [1, vocab] given hist, the latest
// tokens, as mlx-lm's processors do.
func (p Penalties) apply(s *scope, logits, hist *mlx.Array) *mlx.Array {
	if len(p.LogitBias) > 0 && s.err == nil {
		// logits.at[:, ids].add(values): values float32, cast to the
		// logits' dtype by the scatter.
		ids := slices.Sorted(maps.Keys(p.LogitBias))
		vals := make([]float32, len(ids))
		for i, id := range ids {
			vals[i] = float32(p.LogitBias[id])
		}
		v := s.do(func() (*mlx.Array, error) { return mlx.FromSlice(vals, 1, len(vals)) })
		idx := s.ids(ids)
		logits = s.do(func() (*mlx.Array, error) { return mlx.ScatterAddAxis(logits, idx, v, 1) })
	}
	recent := func(n int) *mlx.Array {
		if s.err != nil {
			return nil
		}
		h := hist
		if l := h.Shape()[0]; l > n {
			h = s.slice(h, []int{l - n}, []int{l})
		}
		return s.expandDims(h, 0)
	}
	if n := penaltyWindow(p.Repetition, p.RepetitionContext); n > 0 {
		// selected = logits[:, tokens]; where(selected < 0, selected *
		// penalty, selected / penalty); logits[:, tokens] = selected.
		idx := recent(n)
		sel := s.takeAlong(logits, idx, 1)
		pen := s.like(p.Repetition, sel)
		sel = s.where(s.less(sel, s.like(0, sel)), s.mul(sel, pen), s.div(sel, pen))
		logits = s.putAlong(logits, idx, sel, 1)
	}
	if n := penaltyWindow(p.Presence, p.PresenceContext); n > 0 {
		// logits[:, tokens] -= penalty: once per token, however often.
		idx := recent(n)
		sel := s.takeAlong(logits, idx, 1)
		logits = s.putAlong(logits, idx, s.sub(sel, s.like(p.Presence, sel)), 1)
	}
	if n := penaltyWindow(p.Frequency, p.FrequencyContext); n > 0 {
		// logits.at[:, tokens].subtract(penalty): once per occurrence.
		idx := recent(n)
		pen := s.like(-p.Frequency, logits)
		logits = s.do(func() (*mlx.Array, error) { return mlx.ScatterAddAxis(logits, idx, pen, 1) })
	}
	return logits
}
