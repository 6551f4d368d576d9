// Command generate runs a model's forward pass and generates text on every
// rank of a tensor-parallel job: each rank loads its shard with the
// ShardLoader, all of them run the same steps (two all-sums per layer),
// and rank 0 prints the tokens as they come, then the prompt and
// generation speed and the peak memory, as mlx_lm generate does.
//
//	launch -n 2 -- generate --model DIR --prompt "What is 2+2?" --max-tokens 32
//	launch -n 2 -- generate --model DIR --prompt-ids 1,2,3 --max-tokens 32
//	generate --model DIR --prompt-ids 1,2,3 --temp 0.7 --top-p 0.9 --seed 1
//	generate --model DIR --prompt-ids 1,2,3 --logits logits.safetensors
//
// --json makes rank 0 print one JSON object instead (prompt_ids,
// generated_ids, text, prompt_tps, generation_tps, peak_memory_gb);
// --pp M (or --placement auto) runs the model as a pipeline of M stages,
// the layers placed by each rank's memory;
// --logits FILE writes the full-forward logits of every prompt position,
// float32 [prompt_len, vocab] under the name "logits", for comparison
// with a reference. A program started without a launcher runs as a group
// of one.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/safetensors"
	"github.com/mlxdist/mlxdist/tokenizer"
)

const usage = `usage: generate --model DIR (--prompt-ids IDS | --prompt TEXT) [flags]

Loads this rank's shard of the model in DIR and generates a continuation of
the prompt. Run it as every rank of a job (launch -n N -- generate ...).

flags:
`

type options struct {
	model     string
	prompt    string
	promptIDs []int
	maxTokens int
	sampling  model.Sampling
	raw       bool
	json      bool
	logits    string
	verbose   bool
	trials    int
	tp, pp    int
	auto      bool
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
	if err := generate(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "generate:", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, int) {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.model, "model", "", "model `DIR`: config.json and safetensors files")
	fs.StringVar(&o.prompt, "prompt", "", "prompt `TEXT`, through the model's tokenizer and, unless --raw, its chat template")
	ids := fs.String("prompt-ids", "", "prompt as comma-separated token `IDS`")
	fs.IntVar(&o.maxTokens, "max-tokens", 100, "tokens to generate at most")
	fs.Float64Var(&o.sampling.Temp, "temp", 0, "sampling temperature (0: greedy)")
	fs.Float64Var(&o.sampling.TopP, "top-p", 0, "nucleus sampling: keep the most likely tokens up to this probability mass (0 or 1: off)")
	fs.IntVar(&o.sampling.TopK, "top-k", 0, "keep only the k most likely tokens (0: off)")
	fs.Float64Var(&o.sampling.MinP, "min-p", 0, "drop tokens less likely than this times the best one's probability (0: off)")
	seed := fs.Int64("seed", -1, "random seed of the sampler (negative: MLX's default state)")
	fs.BoolVar(&o.raw, "raw", false, "do not apply the chat template")
	fs.BoolVar(&o.json, "json", false, "rank 0 prints one JSON object with the ids, the text and the figures")
	fs.StringVar(&o.logits, "logits", "", "rank 0 writes the full-forward logits of every prompt position to `FILE` (safetensors, \"logits\" [prompt_len, vocab] float32)")
	fs.BoolVar(&o.verbose, "verbose", false, "log every loaded section")
	fs.IntVar(&o.pp, "pp", 0, "pipeline stages `M`: each rank loads and runs its stage's layers, placed by each rank's memory (with --tp N, N×M = ranks)")
	fs.IntVar(&o.tp, "tp", 0, "with --pp: ranks per stage `N` (default: ranks / M)")
	placement := fs.String("placement", "", "auto: choose TP and PP and place the layers by each rank's memory")
	fs.IntVar(&o.trials, "trials", 1, "generations to run and report; more than 1 runs an untimed warm-up first, as mlx_lm.benchmark does")
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
		fmt.Fprintf(stderr, "generate: "+format+" (see --help)\n", a...)
		return nil, 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if o.model == "" {
		return bad("--model DIR is required")
	}
	if (o.prompt == "") == (*ids == "") {
		return bad("give exactly one of --prompt TEXT and --prompt-ids IDS")
	}
	if *ids != "" {
		for _, f := range strings.Split(*ids, ",") {
			id, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || id < 0 {
				return bad("--prompt-ids %q: want token ids like 1,2,3", *ids)
			}
			o.promptIDs = append(o.promptIDs, id)
		}
	}
	if o.maxTokens < 0 {
		return bad("--max-tokens %d: want 0 or more", o.maxTokens)
	}
	if o.trials < 1 {
		return bad("--trials %d: want 1 or more", o.trials)
	}
	switch {
	case *placement != "" && *placement != "auto":
		return bad("--placement %q: the one placement is auto", *placement)
	case *placement != "" && (o.pp > 0 || o.tp > 0):
		return bad("--placement auto chooses TP and PP: drop --tp and --pp")
	case o.pp < 0 || o.tp < 0:
		return bad("--tp %d --pp %d: want sizes of 1 or more", o.tp, o.pp)
	case o.tp > 0 && o.pp == 0:
		return bad("--tp N needs --pp M: tensor parallelism alone is the default over every rank")
	}
	o.auto = *placement == "auto"
	if *seed >= 0 {
		s := uint64(*seed)
		o.sampling.Seed = &s
	}
	return o, -1
}

// text turns the prompt into ids and generated ids into text, with the
// model's own tokenizer.
type text struct {
	tok *tokenizer.Tokenizer
}

// openText loads the tokenizer of the model in dir.
func openText(dir string) (*text, error) {
	tok, err := tokenizer.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("--prompt needs the model's tokenizer: %w (or pass token ids with --prompt-ids)", err)
	}
	return &text{tok: tok}, nil
}

func generate(ctx context.Context, o *options, stdout io.Writer) error {
	var tok *text
	ids := o.promptIDs
	if o.prompt != "" {
		var err error
		if tok, err = openText(o.model); err != nil {
			return err
		}
		if ids, err = tok.tok.PromptIDs(o.prompt, o.raw); err != nil {
			return err
		}
	}
	if err := mlx.Load(); err != nil {
		return err
	}
	strict := jaccl.EnvBackend() != ""
	g, err := jaccl.Init(ctx, jaccl.Options{Strict: strict})
	if err != nil {
		return err
	}
	defer g.Close()
	rank := g.Rank()
	out := io.Discard
	if rank == 0 {
		out = stdout
	}
	var logOut io.Writer = io.Discard
	if o.verbose && rank == 0 {
		logOut = stdout
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	guard, err := loader.DefaultGuard()
	if err != nil {
		return err
	}
	mo := model.Options{Group: g, Logger: log, Loader: loader.Options{Guard: guard}}
	if o.pp > 0 || o.auto {
		if mo.Placement, err = placeRanks(ctx, o, g, guard, len(ids)+o.maxTokens); err != nil {
			return err
		}
		if err := mo.Placement.WriteTable(out); err != nil {
			return err
		}
	}
	m, err := model.Load(ctx, o.model, mo)
	if err != nil {
		return err
	}
	defer m.Free()

	if o.logits != "" {
		l, err := m.Logits(ctx, ids)
		if err != nil {
			return err
		}
		if rank == 0 {
			if err := writeLogits(o.logits, l, len(ids), m.Config.VocabSize); err != nil {
				return err
			}
		}
	}
	if o.maxTokens == 0 {
		return nil
	}
	opts := model.GenerateOptions{MaxTokens: o.maxTokens, Sampling: o.sampling, Guard: guard}
	if tok != nil {
		// mlx-lm stops at the tokenizer's EOS ids.
		opts.Stop = tok.tok.EOS()
	}
	if o.trials > 1 {
		// A warm-up, as mlx_lm.benchmark runs one, then the timed trials.
		for _, err := range m.Generate(ctx, ids, opts).Tokens() {
			if err != nil {
				return err
			}
		}
	}
	for range o.trials {
		if err := generateOnce(ctx, m, ids, opts, tok, o.json, g.Size(), out); err != nil {
			return err
		}
	}
	return nil
}

// generateOnce runs one generation and prints it and its figures.
func generateOnce(ctx context.Context, m *model.Model, ids []int, opts model.GenerateOptions, tok *text, asJSON bool, ranks int, out io.Writer) error {
	gen := m.Generate(ctx, ids, opts)
	var got []int
	var stream *tokenizer.StreamDecoder
	if tok != nil {
		stream = tok.tok.NewStreamDecoder()
	}
	for t, err := range gen.Tokens() {
		if err != nil {
			return err
		}
		got = append(got, t.ID)
		if !asJSON {
			if stream != nil {
				fmt.Fprint(out, stream.Add(t.ID))
			} else {
				fmt.Fprintf(out, "%d ", t.ID)
			}
		}
	}
	if stream != nil && !asJSON {
		fmt.Fprint(out, stream.Flush())
	}
	st := gen.Stats()
	decoded := ""
	if tok != nil {
		decoded = tok.tok.Decode(got)
	}
	if asJSON {
		b, err := json.Marshal(map[string]any{
			"prompt_ids": ids, "generated_ids": got, "text": decoded,
			"prompt_tps": st.PromptTPS, "generation_tps": st.GenerationTPS,
			"ttft_s":         st.TimeToFirstToken.Seconds(),
			"peak_memory_gb": float64(st.PeakMemory) / 1e9, "stop_reason": st.StopReason, "ranks": ranks,
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(out, string(b))
		return nil
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "==========")
	fmt.Fprintf(out, "Prompt: %d tokens, %.3f tokens-per-sec\n", st.PromptTokens, st.PromptTPS)
	fmt.Fprintf(out, "Generation: %d tokens, %.3f tokens-per-sec\n", st.GeneratedTokens, st.GenerationTPS)
	fmt.Fprintf(out, "Time to first token: %s\n", st.TimeToFirstToken.Round(1e6))
	fmt.Fprintf(out, "Peak memory: %s\n", units.FormatGB(st.PeakMemory))
	return nil
}

// placeRanks places the model on g's ranks by the memory each rank's guard
// allows, gathered from every rank, for a context of n tokens.
func placeRanks(ctx context.Context, o *options, g *jaccl.Group, guard *memguard.Guard, n int) (*loader.Placement, error) {
	mem, err := loader.UsableMemory(ctx, g, guard)
	if err != nil {
		return nil, err
	}
	tp := 0
	if o.pp > 0 {
		tp = o.tp
		if tp == 0 {
			tp = g.Size() / o.pp
		}
		if tp*o.pp != g.Size() {
			return nil, fmt.Errorf("--tp %d × --pp %d is not the %d ranks of the job", tp, o.pp, g.Size())
		}
	}
	return model.Place(o.model, mem, tp, n, loader.Direct)
}

// writeLogits writes float32 logits [rows, vocab] as a safetensors file.
func writeLogits(path string, l []float32, rows, vocab int) error {
	b := make([]byte, 4*len(l))
	for i, v := range l {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return safetensors.WriteFile(path, []safetensors.TensorData{{Name: "logits", Dtype: safetensors.F32,
		Shape: []int64{int64(rows), int64(vocab)}, Data: b}}, nil)
}
