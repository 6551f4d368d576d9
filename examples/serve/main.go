// Command serve answers the OpenAI API with a model spread over every rank
// of a distributed job: each rank loads its tensor-parallel shard, rank 0
// listens, and every rank generates each request in step.
//
//	launch --hostfile hosts.json -- serve --model DIR --listen 127.0.0.1:8080
//	launch -n 2 -- serve --model /tmp/tiny --listen 127.0.0.1:8080
//	serve --model DIR                          # one rank, no launcher
//
// SIGINT or SIGTERM on rank 0 stops taking requests, lets the ones in
// flight and queued finish for --grace, then stops the rest and tells the
// other ranks to return; the other ranks ignore the signal and follow rank
// 0. A rank that dies makes the collectives fail: rank 0 answers 503 and
// every rank exits with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/server"
	"github.com/mlxdist/mlxdist/tokenizer"
)

const usage = `usage: serve --model DIR [--listen ADDR] [flags]

Loads this rank's shard of the model in DIR (config.json, safetensors files
and the tokenizer) and serves the OpenAI API on rank 0: POST
/v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health.
Run it as every rank of a job (launch ... -- serve ...).

examples:
  launch -n 2 -- serve --model /tmp/tiny --listen 127.0.0.1:8080
  launch --hostfile hosts.json -- serve --model ~/models/Kimi-K2.5 --max-context 8192

flags:
`

type options struct {
	model     string
	listen    string
	name      string
	strategy  string
	maxCtx    int
	maxQueue  int
	maxTokens int
	grace     time.Duration
	verbose   bool
}

func main() {
	o, code := parseFlags(os.Args[1:], os.Stderr)
	if o == nil {
		os.Exit(code)
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.model, "model", "", "model `DIR`: config.json, safetensors files, tokenizer")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "`ADDR` rank 0 listens on (port 0: any free port, printed)")
	fs.StringVar(&o.name, "name", "", "model id the API lists and requests name (default: the directory's name)")
	fs.StringVar(&o.strategy, "strategy", "direct", "load strategy: direct, eval-shard-eval or chunked-eval")
	fs.IntVar(&o.maxCtx, "max-context", 0, "prompt plus completion bound in tokens (0: the model's, at most 32768)")
	fs.IntVar(&o.maxQueue, "max-queue", server.DefaultMaxQueue, "requests that may wait behind the one generating")
	fs.IntVar(&o.maxTokens, "max-tokens", server.DefaultMaxTokens, "completion length of a request that names none")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "how long requests may finish after SIGINT or SIGTERM")
	fs.BoolVar(&o.verbose, "verbose", false, "log every loaded section")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	bad := func(format string, a ...any) (*options, int) {
		fmt.Fprintf(stderr, "serve: "+format+" (see --help)\n", a...)
		return nil, 2
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case o.model == "":
		return bad("--model DIR is required")
	case o.maxCtx < 0:
		return bad("--max-context %d: want 0 or more", o.maxCtx)
	case o.maxQueue < 0:
		return bad("--max-queue %d: want 0 or more", o.maxQueue)
	case o.maxTokens <= 0:
		return bad("--max-tokens %d: want 1 or more", o.maxTokens)
	}
	if _, err := loader.ParseStrategy(o.strategy); err != nil {
		return bad("--strategy %q: %v", o.strategy, err)
	}
	if o.name == "" {
		o.name = filepath.Base(filepath.Clean(o.model))
	}
	return o, -1
}

func run(o *options, stdout io.Writer) error {
	tok, err := tokenizer.Load(o.model)
	if err != nil {
		return err
	}
	if err := mlx.Load(); err != nil {
		return err
	}
	// Followers wait between requests in a collective; rank 0's heartbeat
	// keeps it well inside the group's timeout.
	ctx := context.Background()
	g, err := jaccl.Init(ctx, jaccl.Options{Strict: jaccl.EnvBackend() != ""})
	if err != nil {
		return err
	}
	defer g.Close()
	rank := g.Rank()
	var logOut io.Writer = io.Discard
	if rank == 0 {
		logOut = stdout
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	loadLog := slog.New(slog.DiscardHandler)
	if o.verbose {
		loadLog = log
	}
	guard, err := loader.DefaultGuard()
	if err != nil {
		return err
	}
	strategy, _ := loader.ParseStrategy(o.strategy)
	lo := loader.Options{Guard: guard}
	lo.Strategy = strategy
	start := time.Now()
	m, err := model.Load(ctx, o.model, model.Options{Group: g, Logger: loadLog, Loader: lo})
	if err != nil {
		return err
	}
	defer m.Free()
	s, err := server.New(m, tok, server.Options{
		ModelName: o.name, MaxContext: o.maxCtx, MaxQueue: o.maxQueue, DefaultMaxTokens: o.maxTokens,
		Guard: guard, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("model loaded", "model", o.name, "ranks", g.Size(), "seconds", time.Since(start).Seconds(),
		"max_context", s.MaxContext())

	if !s.Leader() {
		// The signal reaches every local rank; rank 0 decides when to stop.
		signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
		return s.Run(ctx)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (choose another --listen address)", o.listen, err)
	}
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 30 * time.Second}
	log.Info("listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/v1")

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- s.Run(runCtx) }()
	httpErr := make(chan error, 1)
	go func() { httpErr <- hs.Serve(ln) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	select {
	case err := <-runErr:
		// The group failed: the waiting requests got their 503s.
		shutdown(hs, 5*time.Second)
		if err == nil {
			err = errors.New("the server stopped")
		}
		return err
	case err := <-httpErr:
		stopRun()
		<-runErr
		return err
	case got := <-sig:
		log.Info("shutting down", "signal", got.String(), "grace", o.grace)
		signal.Stop(sig)
		shutdown(hs, o.grace)
		stopRun()
		return <-runErr
	}
}

// shutdown stops hs taking requests and waits up to grace for the ones in
// flight.
func shutdown(hs *http.Server, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if hs.Shutdown(ctx) != nil {
		hs.Close()
	}
}
