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
	// Penalties change each step's logits before its log-probabilities,
	// as mlx-lm's logits processors do; the zero value changes nothing.
	Penalties Penalties
	// Cache, when set, is used (and left filled) instead of a fresh cache:
	// its positions come before the prompt.
	Cache *Cache
	// Guard, when set, refuses (with a *ContextError) a generation whose
	// KV cache and activations (Model.PlanInference of the cache, the
	// prompt and MaxTokens) would not fit under it.
	Guard *memguard.Guard
	// Halt, when set, is asked as each decoding step is built whether
	// this rank wants the generation to end; it is called on the
	// goroutine that iterates Tokens. Its answer is part of the step: on a
	// group every rank's flag is summed in the step's first all-sum over
	// the whole group (one more element, not one more collective), and
	// the generation ends on every rank, StopReason "halted", before it
	// would yield the token of the first step in which any rank said yes.
	// Steps are built one token ahead, so a Halt that turns true while
	// token n is yielded ends the generation after token n+1, on every
	// rank alike. On a group the flag travels whether Halt is set or
	// not, so a rank that never halts may leave it nil.
	Halt func() bool
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
	PeakMemory int64
	// StopReason is "stop" (a stop token), "length" (MaxTokens),
	// "halted" (GenerateOptions.Halt) or "cancelled".
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
	// hist is the tokens the penalties look at after this step's input
	// (int [n]), nil without penalties.
	hist *mlx.Array
	// halt is the ranks' halt flags summed (int32 [1]), on a group; read
	// sets halted from it. On one rank halted is Halt's answer.
	halt   *mlx.Array
	halted bool
}

// arrays are the step's arrays to evaluate.
func (st *step) arrays() []*mlx.Array {
	a := []*mlx.Array{st.token, st.logprobs}
	if st.halt != nil {
		a = append(a, st.halt)
	}
	if st.hist != nil {
		a = append(a, st.hist)
	}
	return a
}

func (st *step) free() {
	if st != nil {
		mlx.FreeAll(st.token, st.logprobs, st.halt, st.hist)
	}
}

// A rider carries a step's halt flag through the step's first all-sum
// over the group (scope.allSum hands it the summand): the summand is
// flattened, the flag appended in its dtype, and the sum cut apart again.
// Every rank builds the same step, so every rank's flag rides the same
// collective. Small integers are exact in every float dtype.
type rider struct {
	g   *mlx.Group
	st  *mlx.Stream
	up  bool
	sum *mlx.Array // the summed flag, int32 [1], once carried
}

func (r *rider) flag(s *scope) *mlx.Array {
	v := int32(0)
	if r.up {
		v = 1
	}
	return s.do(func() (*mlx.Array, error) { return mlx.FromSlice([]int32{v}) })
}

// carry all-sums x with the flag and returns x's sum.
func (r *rider) carry(s *scope, x *mlx.Array, st *mlx.Stream) *mlx.Array {
	if s.err != nil {
		return nil
	}
	shape, n := x.Shape(), x.Size()
	both := s.concat([]*mlx.Array{s.reshape(x, -1), s.astype(r.flag(s), x.Dtype())}, 0)
	sum := s.do(func() (*mlx.Array, error) { return mlx.AllSum(both, r.g, st) })
	r.sum = s.astype(s.slice(sum, []int{n}, []int{n + 1}), mlx.Int32)
	return s.reshape(s.slice(sum, []int{0}, []int{n}), shape...)
}

// alone sums the flag in an all-sum of its own, for a step that had none
// over the group.
func (r *rider) alone(s *scope) {
	r.sum = s.do(func() (*mlx.Array, error) { return mlx.AllSum(r.flag(s), r.g, r.st) })
}

// haltGroup is the group a step's halt flag is summed over, and its
// stream: the whole group the model runs on (every stage of a pipeline),
// nil for one rank.
func (m *Model) haltGroup() (*mlx.Group, *mlx.Stream) {
	switch t := m.tp; {
	case t == nil:
		return nil, nil
	case t.pp != nil && t.pp.stages > 1:
		return t.pp.world, t.pp.stream
	case t.n > 1:
		return t.g, t.stream
	}
	return nil, nil
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
	if err := o.Penalties.validate(m.Config.VocabSize); err != nil {
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
		err := m.guarded(func() error {
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
			return mlx.Eval(cache.arrays()...)
		})
		if err != nil {
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
		// forward pass, then release it. After a lost peer the group
		// refuses the wait at once: MLX would never finish that step.
		if next != nil {
			if werr := m.guarded(func() error { return mlx.Eval(next.arrays()...) }); werr != nil && err == nil {
				err = werr
			}
		}
		cur.free()
		next.free()
	}()
	var first time.Time
	for n := 0; ; n++ {
		if n != maxTokens {
			next, err = g.step(tokenInput(cur), cache)
			if err != nil {
				return err
			}
		}
		if n == 0 {
			if err := m.guarded(func() error { return mlx.Eval(cur.token) }); err != nil {
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
		if cur.halted {
			g.stats.StopReason = "halted"
			return nil
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
	// hist is the previous step's token history, for the penalties.
	hist *mlx.Array
}

func idsInput(ids []int) input    { return input{ids: ids} }
func tokenInput(prev *step) input { return input{token: prev.token, hist: prev.hist} }

// step builds one decoding step in one trip to the MLX thread — forward
// (with the halt flag riding its first all-sum), the last position's
// logits, logprobs = logits − logsumexp, the sampler — and starts
// evaluating it.
func (g *Generation) step(in input, cache *Cache) (*step, error) {
	m := g.m
	st := &step{}
	up := g.o.Halt != nil && g.o.Halt()
	var r *rider
	if hg, hs := m.haltGroup(); hg != nil {
		r = &rider{g: hg, st: hs, up: up}
	} else {
		st.halted = up
	}
	feed := func(s *scope) *mlx.Array { return s.reshape(in.token, 1, 1) }
	if in.token == nil {
		if err := m.checkIDs(in.ids); err != nil {
			return nil, err
		}
		feed = func(s *scope) *mlx.Array { return s.ids(in.ids) }
	}
	err := m.guarded(func() error {
		return mlx.Do(func() error {
			post := func(s *scope, logits *mlx.Array) []*mlx.Array {
				sh := logits.Shape()
				last := s.squeeze(s.slice(logits, []int{0, sh[1] - 1, 0}, []int{sh[0], sh[1], sh[2]}), 1)
				if p := g.o.Penalties; p.active() {
					st.hist = g.history(s, in)
					last = p.apply(s, last, st.hist)
				}
				lp := s.sub(last, s.logsumexp(last, true))
				tok := s.sample(g.o.Sampling, lp)
				st.token, st.logprobs = tok, s.squeeze(lp, 0)
				if r != nil {
					if r.sum == nil {
						r.alone(s)
					}
					st.halt = r.sum
				}
				return st.arrays()
			}
			logits, _, err := m.run(func(s *scope) *mlx.Array {
				s.rider = r
				return feed(s)
			}, cache, post)
			if err != nil {
				return err
			}
			logits.Free()
			return mlx.AsyncEval(st.arrays()...)
		})
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
	err := g.m.guarded(func() error {
		return mlx.Do(func() error {
			ids, err := mlx.ToSlice[uint32](st.token)
			if err != nil {
				return err
			}
			if len(ids) != 1 {
				return fmt.Errorf("model: sampler returned %d tokens, want 1", len(ids))
			}
			t.ID = int(ids[0])
			if st.halt != nil {
				flag, err := mlx.ToSlice[int32](st.halt)
				if err != nil {
					return err
				}
				st.halted = flag[0] != 0
			}
			// Log-probabilities come in the logits' dtype (bfloat16 for
			// most checkpoints) and are read as float32, exactly.
			s := &scope{}
			defer s.release()
			if g.o.Logprobs {
				all := s.astype(st.logprobs, mlx.Float32)
				if s.err != nil {
					return s.err
				}
				t.Logprobs, err = mlx.ToSlice[float32](all)
				if err != nil {
					return err
				}
				t.Logprob = t.Logprobs[t.ID]
				return nil
			}
			one := s.astype(s.take(st.logprobs, s.i32(t.ID), 0), mlx.Float32)
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
	})
	return t, err
}

// guarded runs f, MLX work whose collectives span the model's group, under
// the group's watchdog (jaccl.Group.Watch): a step that does not finish
// within the group's timeout marks the group unusable and goes to its hang
// handler, which by default ends the process; a step that fails on a lost
// peer marks it unusable too, and its error is explained
// (cluster.ErrPeerLost). A peer that has died does not always fail the
// collective in flight: MLX's ring back-end never completes one started
// after it noticed, and without the watchdog the generation would wait for
// ever. Cancelling a generation is not a hang, so only the timeout applies.
func (m *Model) guarded(f func() error) error {
	if m.group == nil || m.group.Size() < 2 {
		return f()
	}
	finish, err := m.group.Watch(context.Background())
	if err != nil {
		return err
	}
	return finish(f())
}
