package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/tokenizer"
)

// Defaults of Options.
const (
	DefaultMaxQueue     = 32
	DefaultMaxBodyBytes = 4 << 20
	DefaultMaxTokens    = 512
	DefaultHeartbeat    = 5 * time.Second
	// DefaultStopWait is under the launcher's grace between SIGTERM and
	// SIGKILL (5 s by default), so a client hears why its answer ended
	// before rank 0 is killed.
	DefaultStopWait = time.Second
	// DefaultMaxContext caps the context of a model whose config allows
	// more: the KV cache of its whole max_position_embeddings would rarely
	// fit.
	DefaultMaxContext = 32768
)

// Options configure a Server. The zero value serves with the defaults.
type Options struct {
	// ModelName is the id /v1/models lists and requests name; "" means
	// the model's model_type.
	ModelName string
	// MaxContext bounds prompt plus completion, in tokens; 0 means the
	// model's max_position_embeddings, at most DefaultMaxContext.
	MaxContext int
	// MaxQueue bounds the requests waiting behind the one generating;
	// more get 429. 0 means DefaultMaxQueue.
	MaxQueue int
	// MaxBodyBytes bounds a request body; larger ones get 413.
	MaxBodyBytes int64
	// DefaultMaxTokens is the completion length when a request names
	// none (clipped to what the context leaves).
	DefaultMaxTokens int
	// Heartbeat is how often an idle rank 0 tells the other ranks it is
	// alive; it must be shorter than the group's collective timeout.
	Heartbeat time.Duration
	// StopWait is how long, once Run's context is done, an answer in
	// flight waits for its generation's next piece before it ends with a
	// 503 error. The generation normally stops at its next token; a
	// launcher stopping the job because a rank died can find MLX waiting
	// for ever inside a collective, and the client would otherwise see its
	// connection dropped. 0 means DefaultStopWait.
	StopWait time.Duration
	// Guard, when set, refuses at New a MaxContext whose KV cache and
	// activations (model.PlanInference) would not fit. Requests run one at
	// a time, so this one plan bounds the server's memory.
	Guard *memguard.Guard
	// Logger receives one line per request and the server's events; nil
	// is silent.
	Logger *slog.Logger
}

// Server serves one model over its group: an http.Handler on rank 0, and
// Run on every rank.
type Server struct {
	m        *model.Model
	tok      *tokenizer.Tokenizer
	o        Options
	ls       *lockstep
	stopIDs  []int
	maxCtx   int
	queue    chan *job
	created  int64
	seq      atomic.Int64
	closing  atomic.Bool
	done     chan struct{}
	doneOnce sync.Once
	// stopping is closed when Run's context is done.
	stopping chan struct{}
	stopOnce sync.Once
	failure  atomic.Pointer[error]
	log      *slog.Logger
}

// New prepares a server for m (loaded over its group, or alone) and its
// tokenizer. Every rank calls it with the same model directory and
// options. A MaxContext that would not fit under Options.Guard is refused
// with the guard's error (errors.Is memguard.ErrExceeded).
func New(m *model.Model, tok *tokenizer.Tokenizer, o Options) (*Server, error) {
	if m == nil || tok == nil {
		return nil, errors.New("server: a model and its tokenizer are both needed")
	}
	cfg := m.Config
	if o.ModelName == "" {
		o.ModelName = cfg.ModelType
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = DefaultMaxQueue
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.DefaultMaxTokens == 0 {
		o.DefaultMaxTokens = DefaultMaxTokens
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.StopWait == 0 {
		o.StopWait = DefaultStopWait
	}
	switch {
	case o.MaxQueue < 0:
		return nil, fmt.Errorf("server: max queue %d is negative", o.MaxQueue)
	case o.MaxBodyBytes < 0:
		return nil, fmt.Errorf("server: max body bytes %d is negative", o.MaxBodyBytes)
	case o.DefaultMaxTokens < 0:
		return nil, fmt.Errorf("server: default max tokens %d is negative", o.DefaultMaxTokens)
	case o.Heartbeat < 0:
		return nil, fmt.Errorf("server: heartbeat %v is negative", o.Heartbeat)
	case o.StopWait < 0:
		return nil, fmt.Errorf("server: stop wait %v is negative", o.StopWait)
	case o.MaxContext < 0:
		return nil, fmt.Errorf("server: max context %d is negative", o.MaxContext)
	}
	maxCtx := o.MaxContext
	if maxCtx == 0 {
		maxCtx = DefaultMaxContext
		if cfg.MaxPositionEmbeddings > 0 {
			maxCtx = min(maxCtx, cfg.MaxPositionEmbeddings)
		}
	}
	if cfg.MaxPositionEmbeddings > 0 && maxCtx > cfg.MaxPositionEmbeddings {
		return nil, fmt.Errorf("server: max context %d is beyond the model's max_position_embeddings %d: lower it", maxCtx, cfg.MaxPositionEmbeddings)
	}
	if o.Guard != nil {
		p := m.PlanInference(maxCtx, 0)
		if err := o.Guard.Fits(p.Total); err != nil {
			return nil, fmt.Errorf("server: a context of %d tokens needs %.2f GB (KV cache %.2f GB, activations %.2f GB): %w; lower the max context",
				maxCtx, float64(p.Total)/1e9, float64(p.KVCache)/1e9, float64(p.Activations)/1e9, err)
		}
	}
	stop := slices.Clone(cfg.EOS)
	for _, id := range tok.EOS() {
		if !slices.Contains(stop, id) {
			stop = append(stop, id)
		}
	}
	if stop == nil {
		// An empty non-nil list: no stop token, rather than the config's.
		stop = []int{}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		m: m, tok: tok, o: o, ls: &lockstep{g: m.Group()}, stopIDs: stop, maxCtx: maxCtx,
		queue: make(chan *job, o.MaxQueue), created: time.Now().Unix(), done: make(chan struct{}),
		stopping: make(chan struct{}), log: log,
	}, nil
}

// MaxContext is the bound on prompt plus completion, in tokens.
func (s *Server) MaxContext() int { return s.maxCtx }

// Leader reports whether this rank serves HTTP (rank 0, or a model with no
// group).
func (s *Server) Leader() bool { return s.ls.leader() }

// Run drives generation on this rank until ctx is done or the group fails.
//
// On rank 0 it takes the queued requests one at a time, hands each to
// every rank and generates it with them; while idle it sends a heartbeat
// every Options.Heartbeat. When ctx is done it stops the generation in
// flight (its client gets what was generated, finish_reason "stop"; or a
// 503 error event when no token comes within Options.StopWait),
// answers every queued request 503, tells the other ranks to return, and
// returns nil; call http.Server.Shutdown first to let requests finish.
//
// On the other ranks it follows rank 0's orders, generating in step, and
// returns nil when rank 0 shuts down. A follower that leaves on its own
// (ctx done) breaks the group: rank 0 then sees a lost peer.
//
// A collective that fails (a rank died) ends Run with the error on every
// rank that sees it; rank 0 first answers 503 to the request in flight and
// to every queued one, and to every later one. The process should then
// exit non-zero: the group cannot be used again.
func (s *Server) Run(ctx context.Context) error {
	defer s.doneOnce.Do(func() { close(s.done) })
	defer context.AfterFunc(ctx, func() { s.stopOnce.Do(func() { close(s.stopping) }) })()
	if !s.ls.leader() {
		return s.follow(ctx)
	}
	err := s.lead(ctx)
	if err != nil {
		s.failure.Store(&err)
	}
	s.closing.Store(true)
	s.failQueued(err)
	return err
}

func (s *Server) follow(ctx context.Context) error {
	for ctx.Err() == nil {
		o, err := s.ls.recvOrder(context.Background())
		if err != nil {
			return err
		}
		switch o.op {
		case opShutdown:
			s.log.Info("rank 0 shut the server down")
			return nil
		case opGenerate:
			if err := s.generate(o, nil); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("server: rank %d left the group: %w", s.m.Group().Rank(), context.Cause(ctx))
}

func (s *Server) lead(ctx context.Context) error {
	tick := time.NewTicker(s.o.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.closing.Store(true)
			s.failQueued(nil)
			return s.ls.sendOrder(context.Background(), &order{op: opShutdown})
		case <-tick.C:
			if err := s.ls.sendOrder(context.Background(), &order{op: opHeartbeat}); err != nil {
				return err
			}
		case j := <-s.queue:
			if err := s.serve(ctx, j); err != nil {
				return err
			}
		}
	}
}

// failQueued answers every queued request 503.
func (s *Server) failQueued(cause error) {
	for {
		select {
		case j := <-s.queue:
			j.send(event{err: s.unavailableError(cause)})
		default:
			return
		}
	}
}

func (s *Server) unavailableError(cause error) *APIError {
	if cause == nil {
		if p := s.failure.Load(); p != nil {
			cause = *p
		}
	}
	if cause != nil {
		return unavailable("the model's group failed: %v", cause)
	}
	return unavailable("the server is shutting down: retry on another server or later")
}

// job is one request between its handler and rank 0's Run.
type job struct {
	id        string
	ctx       context.Context
	prompt    []int
	maxTokens int
	sampling  model.Sampling
	penalties model.Penalties
	stops     []string
	// events has room for every event the job can produce, so Run never
	// waits on a slow client.
	events   chan event
	enqueued time.Time
	started  time.Time
}

// event is a piece of a job's answer: text, and with the last one the
// finish reason and usage, or an error.
type event struct {
	text   string
	finish string
	usage  usage
	err    *APIError
}

func (j *job) send(e event) { j.events <- e }

// serve runs one job on every rank.
func (s *Server) serve(ctx context.Context, j *job) error {
	if j.ctx.Err() != nil {
		// The client left while queued: the other ranks need not know.
		s.log.Info("request", "id", j.id, "prompt_tokens", len(j.prompt), "completion_tokens", 0,
			"finish_reason", "cancelled", "queued_ms", time.Since(j.enqueued).Milliseconds())
		j.send(event{finish: "cancelled"})
		return nil
	}
	j.started = time.Now()
	o := &order{op: opGenerate, seq: int32(s.seq.Add(1)), prompt: j.prompt, maxTokens: j.maxTokens, sampling: j.sampling,
		penalties: j.penalties}
	if err := s.ls.sendOrder(context.Background(), o); err != nil {
		j.send(event{err: s.unavailableError(err)})
		return err
	}
	return s.generate(o, &request{job: j, shutdown: ctx})
}

// request is rank 0's side of a generation: where its text goes.
type request struct {
	*job
	shutdown context.Context
}

// generate runs o on this rank, in step with the others; r is nil on the
// ranks that only follow.
func (s *Server) generate(o *order, r *request) error {
	var (
		dec      *tokenizer.StreamDecoder
		st       *stopText
		first    time.Time
		finish   string
		stopping bool
		// stopString is set when a stop sequence ended the text.
		stopString bool
		n          int
		genErr     error
	)
	// Rank 0 raises the halt flag once it is stopping; it rides the
	// generation's next step to every rank, which all end at the same
	// token. The other ranks never raise it.
	var halt func() bool
	if r != nil {
		dec = s.tok.NewStreamDecoder()
		st = &stopText{stops: r.stops}
		halt = func() bool { return stopping }
	}
	gen := s.m.Generate(context.Background(), o.prompt, model.GenerateOptions{
		MaxTokens: o.maxTokens, Sampling: o.sampling, Penalties: o.penalties, Stop: s.stopIDs, Halt: halt,
	})
	count := 0
	for tok, err := range gen.Tokens() {
		if err != nil {
			genErr = err
			break
		}
		count++
		if r != nil && !stopping {
			if n == 0 {
				first = time.Now()
			}
			n++
			if slices.Contains(s.stopIDs, tok.ID) {
				finish, stopping = "stop", true
			} else {
				text, hit := st.add(dec.Add(tok.ID))
				if text != "" {
					r.send(event{text: text})
				}
				if hit {
					finish, stopping, stopString = "stop", true, true
				}
			}
			switch {
			case stopping:
			case r.ctx.Err() != nil:
				finish, stopping = "cancelled", true
			case r.shutdown.Err() != nil:
				// Shutting down: the client gets what there is.
				finish, stopping = "stop", true
			}
		}
		if stopping && s.ls.alone() {
			// No other rank waits on this one's steps.
			break
		}
	}
	if genErr != nil {
		if r != nil {
			r.send(event{err: s.unavailableError(genErr)})
		}
		return fmt.Errorf("server: request %d: %w", o.seq, genErr)
	}
	if r == nil {
		// Every rank generates the same tokens: a count that differs from
		// rank 0's shows ranks out of step.
		s.log.Debug("followed", "seq", o.seq, "generated", count)
		return nil
	}
	stats := gen.Stats()
	if finish == "" {
		// The model ended it: a length, or a stop token not yet seen here.
		finish = stats.StopReason
	}
	if !stopString {
		// The decoder's incomplete bytes, and text held back for a stop
		// sequence that never came.
		text, hit := st.add(dec.Flush())
		if !hit {
			text += st.rest()
		}
		if text != "" {
			r.send(event{text: text})
		}
	}
	u := usage{PromptTokens: len(o.prompt), CompletionTokens: n, TotalTokens: len(o.prompt) + n}
	r.send(event{finish: finish, usage: u})
	var tps float64
	if n > 1 {
		if d := time.Since(first).Seconds(); d > 0 {
			tps = float64(n-1) / d
		}
	}
	var ttft time.Duration
	if n > 0 {
		ttft = first.Sub(r.enqueued)
	}
	s.log.Info("request", "id", r.id, "seq", o.seq, "prompt_tokens", len(o.prompt), "completion_tokens", n,
		"generated", count, "finish_reason", finish, "ttft_ms", ttft.Milliseconds(), "tok_per_s", tps,
		"prompt_tok_per_s", stats.PromptTPS, "queued_ms", r.started.Sub(r.enqueued).Milliseconds(), "duration_ms", time.Since(r.enqueued).Milliseconds())
	return nil
}

// newSeed draws the seed of a request that names none: rank 0 draws, every
// rank uses it.
func newSeed() uint64 { return rand.Uint64() }

// randomID names a response.
func randomID() string { return fmt.Sprintf("%016x", rand.Uint64()) }
