package model

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
)

// DefaultPrefillStep is how many prompt tokens one prefill step runs
// (mlx-lm's prefill_step_size).
const DefaultPrefillStep = 2048

// GenerateOptions configure a generation.
type GenerateOptions struct {
	// MaxTokens is how many tokens to generate at most; 0 means 256.
	MaxTokens int
	Sampling  Sampling
	// Stop ends the generation after any of these tokens, which is
	// yielded. nil means the config's EOS ids; an empty non-nil slice
	// means none.
	Stop []int
	// PrefillStep is the prompt chunk size; 0 means DefaultPrefillStep.
	PrefillStep int
	// Logprobs makes every Token carry the whole log-probability vector.
	Logprobs bool
	// Cache, when set, is used (and left filled) instead of a fresh cache:
	// its positions come before the prompt.
	Cache *Cache
	// Guard, when set, refuses (with a *ContextError) a generation whose
	// KV cache and activations (Model.PlanInference of the cache, the
	// prompt and MaxTokens) would not fit under it.
	Guard *memguard.Guard
}

// Token is one generated token.
type Token struct {
	ID int
	// Logprob is the chosen token's log-probability.
	Logprob float32
	// Logprobs is the whole distribution, when asked for.
	Logprobs []float32
}

// Stats are a generation's figures, complete once its iteration ends.
type Stats struct {
	PromptTokens     int
	GeneratedTokens  int
	PromptTime       time.Duration // prefill up to the first token
	GenerationTime   time.Duration // from the first token to the last
	TimeToFirstToken time.Duration
	// PromptTPS and GenerationTPS are tokens per second as mlx-lm's
	// stream_generate reports them: the prompt over the time to the first
	// token, and every generated token over the time since the first.
	PromptTPS     float64
	GenerationTPS float64
	// PeakMemory is MLX's peak memory during the generation, in bytes.
	PeakMemory uint64
	// StopReason is "stop" (a stop token), "length" (MaxTokens) or
	// "cancelled".
	StopReason string
}

// Generation is one prompt's generation; iterate Tokens once.
type Generation struct {
	m      *Model
	ctx    context.Context
	prompt []int
	o      GenerateOptions
	stats  Stats
}

// Generate prepares the generation of prompt's continuation; it starts
// when Tokens is iterated.
func (m *Model) Generate(ctx context.Context, prompt []int, o GenerateOptions) *Generation {
	return &Generation{m: m, ctx: ctx, prompt: slices.Clone(prompt), o: o}
}

// Stats returns the generation's figures so far.
func (g *Generation) Stats() Stats { return g.stats }

// step is one decoding step's lazy results, owned by the generation.
type step struct {
	token, logprobs *mlx.Array
}

func (st *step) free() {
	if st != nil {
		mlx.FreeAll(st.token, st.logprobs)
	}
}

// Tokens runs the generation, as mlx-lm's generate_step does: the prompt
// but its last token is prefilled in chunks (evaluating the cache and
// clearing MLX's buffer cache after each), the last token gives the first
// logits; then step n+1's graph is built on step n's lazy token and
// evaluated asynchronously while step n's token is read and yielded.
//
// The iteration ends after MaxTokens, after a stop token (yielded), when
// the consumer stops, or with ctx's error. In every case the step still in
// flight is waited for before Tokens returns: under tensor parallelism a
// forward pass started while another rank still runs the previous step's
// collectives computes garbage.
func (g *Generation) Tokens() iter.Seq2[Token, error] {
	return func(yield func(Token, error) bool) {
		if err := g.run(yield); err != nil {
			yield(Token{}, err)
		}
	}
}

func (g *Generation) run(yield func(Token, error) bool) (err error) {
	m, o := g.m, g.o
	if len(g.prompt) == 0 {
		return errors.New("model: empty prompt: give at least one token")
	}
	if err := o.Sampling.validate(m.Config.VocabSize); err != nil {
		return err
	}
	maxTokens := o.MaxTokens
	if maxTokens == 0 {
		maxTokens = 256
	}
	if maxTokens < 0 {
		return fmt.Errorf("model: max tokens %d is negative", maxTokens)
	}
	stop := o.Stop
	if stop == nil {
		stop = m.Config.EOS
	}
	prefill := o.PrefillStep
	if prefill <= 0 {
		prefill = DefaultPrefillStep
	}
	context := len(g.prompt) + maxTokens
	if o.Cache != nil {
		context += o.Cache.Offset()
	}
	if err := checkContext(o.Guard, m.PlanInference(context, prefill)); err != nil {
		return err
	}
	cache := o.Cache
	if cache == nil {
		cache = m.NewCache()
		defer cache.Free()
	}
	g.stats = Stats{PromptTokens: len(g.prompt)}
	if err := mlx.ResetPeakMemory(); err != nil {
		return err
	}
	defer func() {
		if peak, perr := mlx.PeakMemory(); perr == nil {
			g.stats.PeakMemory = peak
		}
	}()
	if o.Sampling.Seed != nil {
		if err := mlx.RandomSeed(*o.Sampling.Seed); err != nil {
			return err
		}
	}
	start := time.Now()

	// Prefill all but the last prompt token.
	prompt := g.prompt
	for len(prompt) > 1 {
		if err := g.ctx.Err(); err != nil {
			g.stats.StopReason = "cancelled"
			return err
		}
		n := min(prefill, len(prompt)-1)
		chunk := prompt[:n]
		err := mlx.Do(func() error {
			logits, _, err := m.forwardLocked(chunk, cache, nil)
			if err != nil {
				return err
			}
			// Only the cache is wanted: the head never runs.
			logits.Free()
			return nil
		})
		if err != nil {
			return err
		}
		if err := mlx.Eval(cache.arrays()...); err != nil {
			return err
		}
		if err := mlx.ClearCache(); err != nil {
			return err
		}
		prompt = prompt[n:]
	}

	cur, err := g.step(idsInput(prompt), cache)
	if err != nil {
		return err
	}
	var next *step
	defer func() {
		// Wait for the step in flight before anything else may run a
		// forward pass, then release it.
		if next != nil {
			if werr := mlx.Eval(next.token, next.logprobs); werr != nil && err == nil {
				err = werr
			}
		}
		cur.free()
		next.free()
	}()
	var first time.Time
	for n := 0; ; n++ {
		if n != maxTokens {
			next, err = g.step(tokenInput(cur.token), cache)
			if err != nil {
				return err
			}
		}
		if n == 0 {
			if err := mlx.Eval(cur.token); err != nil {
				return err
			}
			first = time.Now()
			g.stats.TimeToFirstToken = first.Sub(start)
			g.stats.PromptTime = g.stats.TimeToFirstToken
			if s := g.stats.PromptTime.Seconds(); s > 0 {
				g.stats.PromptTPS = float64(len(g.prompt)) / s
			}
		}
		if n == maxTokens {
			g.stats.StopReason = "length"
			return nil
		}
		tok, err := g.read(cur)
		if err != nil {
			return err
		}
		g.stats.GeneratedTokens++
		g.stats.GenerationTime = time.Since(first)
		if s := g.stats.GenerationTime.Seconds(); s > 0 {
			g.stats.GenerationTPS = float64(g.stats.GeneratedTokens) / s
		}
		if !yield(tok, nil) {
			g.stats.StopReason = "cancelled"
			return nil
		}
		if slices.Contains(stop, tok.ID) {
			g.stats.StopReason = "stop"
			return nil
		}
		if err := g.ctx.Err(); err != nil {
			g.stats.StopReason = "cancelled"
			return err
		}
		if n%256 == 0 {
			if err := mlx.ClearCache(); err != nil {
				return err
			}
		}
		cur.free()
		cur, next = next, nil
	}
}

// input is what a step feeds the model: literal ids or the previous step's
// lazy token.
type input struct {
	ids   []int
	token *mlx.Array
}

func idsInput(ids []int) input        { return input{ids: ids} }
func tokenInput(tok *mlx.Array) input { return input{token: tok} }

// step builds one decoding step in one trip to the MLX thread — forward,
// the last position's logits, logprobs = logits − logsumexp, the sampler —
// and starts evaluating it.
func (g *Generation) step(in input, cache *Cache) (*step, error) {
	m := g.m
	st := &step{}
	err := mlx.Do(func() error {
		post := func(s *scope, logits *mlx.Array) []*mlx.Array {
			sh := logits.Shape()
			last := s.squeeze(s.slice(logits, []int{0, sh[1] - 1, 0}, []int{sh[0], sh[1], sh[2]}), 1)
			lp := s.sub(last, s.logsumexp(last, true))
			tok := s.sample(g.o.Sampling, lp)
			st.token, st.logprobs = tok, s.squeeze(lp, 0)
			return []*mlx.Array{st.token, st.logprobs}
		}
		var logits *mlx.Array
		var err error
		if in.token != nil {
			logits, _, err = m.forwardTokenLocked(in.token, cache, post)
		} else {
			logits, _, err = m.forwardLocked(in.ids, cache, post)
		}
		if err != nil {
			return err
		}
		logits.Free()
		return mlx.AsyncEval(st.token, st.logprobs)
	})
	if err != nil {
		st.free()
		return nil, err
	}
	return st, nil
}

// read evaluates a step's token (and log-probabilities) and returns it.
func (g *Generation) read(st *step) (Token, error) {
	var t Token
	err := mlx.Do(func() error {
		ids, err := mlx.ToSlice[uint32](st.token)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("model: sampler returned %d tokens, want 1", len(ids))
		}
		t.ID = int(ids[0])
		if g.o.Logprobs {
			t.Logprobs, err = mlx.ToSlice[float32](st.logprobs)
			if err != nil {
				return err
			}
			t.Logprob = t.Logprobs[t.ID]
			return nil
		}
		s := &scope{}
		defer s.release()
		one := s.take(st.logprobs, s.i32(t.ID), 0)
		if s.err != nil {
			return s.err
		}
		v, err := mlx.ToSlice[float32](one)
		if err != nil {
			return err
		}
		t.Logprob = v[0]
		return nil
	})
	return t, err
}
