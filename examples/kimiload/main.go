// Command kimiload is the seed's model-loading test: every rank of a
// distributed job loads its tensor-parallel shard of a Kimi K2.5-layout
// checkpoint with the ShardLoader, logs each layer's evaluation and the
// memory guard, and rank 0 prints one table of every rank's figures — load
// time, active and peak memory, free memory, guard status, bytes read and
// peak / shard — the seed's "loading benchmark" table.
//
//	bin/launch -n 2 -- bin/kimiload --model DIR --verify
//	bin/launch --hostfile hosts.json -- bin/kimiload --model DIR --strategy eval-shard-eval
//	kimiload --plan-only --describe kimi-k2.5
//
// Each rank plans its load from the shard files' headers before it reads a
// weight and refuses one whose predicted peak would not fit under the
// memory guard (a *loader.PlanError, exit status 1). --verify then reads
// every tensor this rank holds a part of, whole, with package safetensors,
// cuts the rank's part out in Go and compares it byte for byte with the
// MLX array the loader produced.
//
// The figures of all ranks reach rank 0 through an all-gather
// (jaccl.AllGatherValue), so the table needs no file shared between machines. A
// program started without a launcher runs as a group of one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/loader"
)

const usage = `usage: kimiload --model DIR [flags]
       kimiload --plan-only (--describe kimi-k2.5 | --model DIR) [flags]

Loads this rank's tensor-parallel shard of a checkpoint, section by section,
under the memory guard (MLX_MEMORY_GUARD_GB sets its headroom), and prints
the load table for every rank on rank 0. Run it as every rank of a job.
With --prompt every rank then builds the model from what it loaded and
answers the prompt in lockstep (greedy, with the model's chat template, as
mlx_lm generate does); rank 0 prints the answer and the inference table.

--plan-only reads no weight: it prints what each node would read, keep and
peak at for TP=2 and TP=4 (see --tp), with the direct and eval-shard-eval
strategies, on nodes of --memory-gb (512 GB by default for a plan); with
--describe kimi-k2.5 the full Kimi K2.5 is described without any file and
set beside the seed's measured figures. With --pp M or --placement auto it
prints, per stage, the layers, weights, KV cache and peak of each rank on
nodes of --nodes-gb (by default 2×512, 512+256+256 and 4×512 GB).

--pp M (or --placement auto) in a load cuts the layers into M pipeline
stages of ranks/M ranks by each rank's usable memory, gathered from every
rank's guard; each rank then loads its stage's layers only (the embeddings
on the first stage, the head on the last), its slice of them within the
stage.

examples:
  bin/launch -n 2 -- bin/kimiload --model /tmp/kimi-tiny --verify
  bin/launch -n 2 -- bin/kimiload --model /tmp/kimi-tiny --strategy eval-shard-eval --verbose
  bin/launch -n 2 -- bin/kimiload --model /tmp/kimi-tiny --prompt "What is 2+2? Answer in one sentence."
  bin/launch --hostfile hosts.json -- bin/kimiload --model ~/models/Kimi-K2.5
  kimiload --model /tmp/kimi-tiny                  # one rank, no launcher
  kimiload --plan-only --describe kimi-k2.5
  kimiload --plan-only --model /tmp/kimi-tiny --tp 2,4,8
  launch -n 2 -- kimiload --model '/tmp/ckpt{rank}' --stream --verify   # only /tmp/ckpt0 exists
  kimiload --plan-only --describe kimi-k2.5 --stream --link-gbps 5
  kimiload --plan-only --describe kimi-k2.5 --placement auto --context 32768
  kimiload --plan-only --describe kimi-k2.5 --pp 3 --nodes-gb 512,256,256
  bin/launch -n 3 -- bin/kimiload --model /tmp/kimi-tiny --pp 3 --verify

flags:
`

type options struct {
	model      string
	strategy   loader.Strategy
	read       loader.ReadMode
	workers    int
	verify     bool
	planOnly   bool
	describe   string
	tp         []int
	memoryGB   float64
	jsonOut    bool
	verbose    bool
	backend    jaccl.Backend
	timeout    time.Duration
	ignorePlan bool
	pp         int
	placement  string
	nodesGB    []float64
	context    int
	prompt     string
	raw        bool
	maxTokens  int
	// stream lets a rank without the checkpoint receive its shard from the
	// ranks that have it; cache, with {rank} expanded, keeps what it
	// received as its own shard checkpoint.
	stream   bool
	cache    string
	windowMB int64
	diskGBps float64
	linkGBps float64
	samples  string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	o, code := parseFlags(args, stderr)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if o.planOnly {
		err = planOnly(o, stdout)
	} else {
		err = load(ctx, o, stdout)
	}
	if err != nil {
		msg := oneLine(err)
		if pe := (*loader.PlanError)(nil); errors.As(err, &pe) {
			msg += " (here: --ignore-plan)"
		}
		fmt.Fprintln(stderr, "kimiload:", msg)
		return 1
	}
	return 0
}

// parseFlags returns the options, or an exit status ≥ 0 when the program
// should stop: 0 after --help, 2 for a usage error.
func parseFlags(args []string, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("kimiload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.model, "model", "", "checkpoint `DIR`: safetensors shard files and model.safetensors.index.json; {rank} in it is replaced by the rank (a node's own shard from reshard)")
	strategy := fs.String("strategy", "direct", "how to load: direct, eval-shard-eval or chunked (chunked-eval: every rank loads everything whole)")
	read := fs.String("read", "auto", "how the files are read: auto (pread long runs, copy short ones from the mapping), pread, mmap, map (back whole parts by the file where MLX can) or mlx (MLX's own loader; eval-shard-eval and chunked only)")
	fs.IntVar(&o.workers, "workers", 0, "tensors filled at once (0: the loader's default)")
	fs.BoolVar(&o.verify, "verify", false, "compare every loaded array with the files byte for byte; print PASS or FAIL per rank")
	fs.BoolVar(&o.planOnly, "plan-only", false, "print the predicted per-node figures and read no weight")
	fs.StringVar(&o.describe, "describe", "", "with --plan-only: plan a model described without files (kimi-k2.5)")
	tp := fs.String("tp", "2,4", "with --plan-only: the tensor-parallel sizes to plan, comma-separated")
	fs.Float64Var(&o.memoryGB, "memory-gb", 0, "physical memory per node the guard assumes, in GB (default: this machine's; 512 with --plan-only)")
	fs.BoolVar(&o.jsonOut, "json", false, "rank 0 also prints every rank's figures as one JSON line starting with "+jsonMarker)
	fs.BoolVar(&o.verbose, "verbose", false, "every rank logs its layers (not only rank 0); print the plan's section table")
	backend := fs.String("backend", "", "back-end when no launcher set one up: jaccl, jaccl-ring, ring, nccl or any (default: the launcher's, else a group of one)")
	fs.DurationVar(&o.timeout, "timeout", jaccl.DefaultTimeout, "give up when a collective takes longer than this (a peer is hung)")
	fs.IntVar(&o.pp, "pp", 0, "pipeline stages: each rank loads its stage's layers only, TP = ranks / `M` per stage, the layers placed by each rank's memory")
	fs.StringVar(&o.placement, "placement", "", "auto: choose TP and PP and place the layers by each rank's memory")
	nodes := fs.String("nodes-gb", "", "with --plan-only and --pp or --placement: each node's physical memory in GB, comma-separated (default: 512,512 then 512,256,256 then 4×512)")
	fs.IntVar(&o.context, "context", 0, "with --pp or --placement: the context length whose KV cache every stage must also hold")
	fs.StringVar(&o.prompt, "prompt", "", "after the load, answer this prompt on every rank in lockstep and print the inference table")
	fs.BoolVar(&o.raw, "raw", false, "with --prompt: encode the prompt as is, without the model's chat template")
	fs.IntVar(&o.maxTokens, "max-tokens", 100, "with --prompt: the most tokens to generate")
	fs.BoolVar(&o.stream, "stream", false, "a rank whose --model does not exist receives its shard over the group from the ranks that have it (with --plan-only: print the streaming plan, rank 0 the only source)")
	fs.StringVar(&o.cache, "cache", "", "with --stream: a receiving rank also writes what it got to `DIR` ({rank} expanded) as its own shard checkpoint, for the next load")
	fs.Int64Var(&o.windowMB, "stream-window-mb", loader.DefaultStreamWindow>>20, "with --stream: MB of parts a source keeps in flight")
	fs.Float64Var(&o.diskGBps, "disk-gbps", 6.4, "with --plan-only --stream: a source's disk read bandwidth, GB/s")
	fs.Float64Var(&o.linkGBps, "link-gbps", 5, "with --plan-only --stream: the bandwidth of one link between nodes, GB/s")
	fs.StringVar(&o.samples, "samples", "", "write MLX active memory and resident size every 20ms of the load to `FILE` as JSON lines ({rank} in it is replaced by the rank)")
	fs.BoolVar(&o.ignorePlan, "ignore-plan", false, "load even when the plan says the peak would not fit (the guard still checks every layer)")
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
		fmt.Fprintf(stderr, "kimiload: "+format+" (see --help)\n", a...)
		return nil, 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	s := *strategy
	if s == "chunked" {
		s = loader.ChunkedEval.String()
	}
	var err error
	if o.strategy, err = loader.ParseStrategy(s); err != nil {
		return bad("--strategy %q: want direct, eval-shard-eval or chunked", *strategy)
	}
	switch *read {
	case "auto":
		o.read = loader.ReadAuto
	case "mmap":
		o.read = loader.ReadMmap
	case "pread":
		o.read = loader.ReadPread
	case "map":
		o.read = loader.ReadMap
	case "mlx":
		o.read = loader.ReadMLX
	default:
		return bad("--read %q: want auto, pread, mmap, map or mlx", *read)
	}
	if *backend != "" {
		if o.backend, err = cluster.ParseBackend(*backend); err != nil {
			return bad("--backend: %v", err)
		}
	}
	if o.memoryGB < 0 {
		return bad("--memory-gb %g: want a positive number of GB", o.memoryGB)
	}
	if o.workers < 0 {
		return bad("--workers %d: want 0 or more", o.workers)
	}
	if o.timeout <= 0 {
		return bad("--timeout %v: want a positive duration such as 60s", o.timeout)
	}
	for _, f := range strings.Split(*tp, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil || n < 1 {
			return bad("--tp %q: want sizes like 2,4", *tp)
		}
		o.tp = append(o.tp, n)
	}
	if *nodes != "" {
		for _, f := range strings.Split(*nodes, ",") {
			var gb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(f), "%g", &gb); err != nil || gb <= 0 {
				return bad("--nodes-gb %q: want sizes in GB like 512,256,256", *nodes)
			}
			o.nodesGB = append(o.nodesGB, gb)
		}
	}
	switch {
	case o.pp < 0:
		return bad("--pp %d: want a number of stages, 1 or more", o.pp)
	case o.placement != "" && o.placement != "auto":
		return bad("--placement %q: the one placement is auto", o.placement)
	case o.placement != "" && o.pp > 0:
		return bad("--pp and --placement auto exclude each other")
	case o.context < 0:
		return bad("--context %d: want 0 or more tokens", o.context)
	case len(o.nodesGB) > 0 && !(o.planOnly && (o.pp > 0 || o.placement != "")):
		return bad("--nodes-gb is for --plan-only with --pp or --placement auto; a load measures each rank's memory")
	case (o.pp > 0 || o.placement != "") && o.strategy == loader.ChunkedEval:
		return bad("--strategy chunked loads everything on every rank; a pipeline loads stages")
	case o.planOnly && o.describe == "" && o.model == "":
		return bad("--plan-only needs --describe kimi-k2.5 or --model DIR")
	case o.planOnly && o.describe != "" && o.model != "":
		return bad("--describe and --model exclude each other")
	case !o.planOnly && o.describe != "":
		return bad("--describe plans without files and needs --plan-only")
	case !o.planOnly && o.model == "":
		return bad("--model DIR is required")
	case o.planOnly && o.verify:
		return bad("--verify needs a load, not --plan-only")
	case o.prompt != "" && (o.pp > 0 || o.placement != ""):
		return bad("--prompt answers with the model split by TP; for a pipeline use examples/generate --pp")
	case o.planOnly && o.prompt != "":
		return bad("--prompt needs a load, not --plan-only")
	case o.maxTokens < 1:
		return bad("--max-tokens %d: want 1 or more", o.maxTokens)
	case o.cache != "" && !o.stream:
		return bad("--cache keeps what a rank receives and needs --stream")
	case o.stream && o.prompt != "":
		return bad("--prompt needs the model's config and tokenizer on every rank; a streamed rank has no files")
	case o.stream && o.strategy != loader.Direct:
		return bad("--stream needs --strategy direct")
	case o.windowMB < 1:
		return bad("--stream-window-mb %d: want at least 1", o.windowMB)
	case o.diskGBps <= 0 || o.linkGBps <= 0:
		return bad("--disk-gbps and --link-gbps want positive GB/s")
	}
	if o.describe != "" && !isKimi(o.describe) {
		return bad("--describe %q: the model described without files is kimi-k2.5", o.describe)
	}
	return o, -1
}

func isKimi(s string) bool {
	switch strings.ToLower(s) {
	case "kimi-k2.5", "kimi_k25", "kimi":
		return true
	}
	return false
}

// oneLine keeps an error on one line: joined errors become "; "-separated.
func oneLine(err error) string {
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}
