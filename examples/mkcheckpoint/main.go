// Command mkcheckpoint writes a checkpoint with the exact structure of Kimi
// K2.5 (as mlx-lm's 4-bit conversion stores it) or of a dense Llama, filled
// with random data, so that loading a 600 GB-class model can be tested on a
// machine without its weights. The result loads in mlx-lm.
//
//	mkcheckpoint --describe
//	mkcheckpoint --out /tmp/kimi-small --scale 0.0625 --layers 3 --experts 8
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"time"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/units"
)

const usage = `usage: mkcheckpoint [flags] --out DIR
       mkcheckpoint [flags] --describe

Writes a checkpoint with the structure of a real model and random data:
shard files, model.safetensors.index.json, config.json, a tokenizer and a
stamp. A second run with the same flags finds the stamp and writes nothing.
The checkpoint is built beside DIR and moved into place when complete, so
an interrupted run leaves DIR as it was. A DIR holding files this tool did
not write is refused; --force replaces it whole (never one that holds
subdirectories).
--describe prints the tensor list (name, dtype, shape, bytes) and totals
instead of writing.

Widths (hidden, intermediate, heads, ranks, vocabulary) follow --scale;
layer, expert and file counts are set on their own. Without --files a
scaled model keeps the full model's size per file (about 3.2 GB).

examples:
  mkcheckpoint --describe                          # full Kimi K2.5, no data
  mkcheckpoint --out /tmp/kimi-tiny --scale 0.0625 --layers 3 --experts 8 --files 2
  mkcheckpoint --out /tmp/kimi-quarter --scale 0.25            # about 36 GB
  mkcheckpoint --out /tmp/kimi-full                # the full 578 GB
  mkcheckpoint --out /tmp/llama --model llama --scale 0.5

flags:
`

type flags struct {
	out      string
	model    string
	scale    float64
	layers   int
	experts  int
	files    int
	seed     uint64
	describe bool
	force    bool
	vision   bool
	parallel int
	dtype    string
	bits     int
	float    bool
}

func main() {
	var f flags
	fs := flag.NewFlagSet("mkcheckpoint", flag.ContinueOnError)
	fs.StringVar(&f.out, "out", "", "directory to write the checkpoint into (created if missing)")
	fs.StringVar(&f.model, "model", "kimi-k2.5", "model structure: kimi-k2.5 or llama")
	fs.Float64Var(&f.scale, "scale", 1, "factor applied to every width, in (0, 1]")
	fs.IntVar(&f.layers, "layers", 0, "number of transformer layers (0: the model's own)")
	fs.IntVar(&f.experts, "experts", 0, "routed experts per MoE layer, kimi-k2.5 only (0: the model's own)")
	fs.IntVar(&f.files, "files", 0, "number of shard files (0: the model's own, or its size per file when scaled)")
	fs.Uint64Var(&f.seed, "seed", 0, "seed of the random data; equal seeds give equal bytes")
	fs.BoolVar(&f.describe, "describe", false, "print the tensor list and totals, write nothing")
	fs.BoolVar(&f.force, "force", false, "replace DIR whole, even when it holds this checkpoint or files this tool did not write")
	fs.BoolVar(&f.vision, "vision", true, "include the vision tower, kimi-k2.5 only")
	fs.IntVar(&f.parallel, "parallel", 0, "shard files written at once (0: up to 4)")
	fs.StringVar(&f.dtype, "dtype", "", "dtype of float tensors, scales and biases: BF16, F16 or F32 (default: the model's, BF16)")
	fs.IntVar(&f.bits, "bits", 0, "quantization bits: 2, 4 or 8 (0: the model's, 4)")
	fs.BoolVar(&f.float, "unquantized", false, "store every weight in --dtype, unquantized")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mkcheckpoint: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	if err := run(f, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mkcheckpoint:", err)
		os.Exit(1)
	}
}

// buildSpec turns the flags into a valid Spec.
func buildSpec(f flags) (ckptgen.Spec, error) {
	var s ckptgen.Spec
	switch f.model {
	case "kimi-k2.5", "kimi_k25", "kimi":
		s = ckptgen.KimiK25()
		s.Vision = f.vision
	case "llama":
		s = ckptgen.Llama()
		if f.experts != 0 {
			return s, errors.New("--experts applies to kimi-k2.5 only")
		}
	default:
		return s, fmt.Errorf("--model %q: want kimi-k2.5 or llama", f.model)
	}
	if !(f.scale > 0 && f.scale <= 1) {
		return s, fmt.Errorf("--scale %g: want a factor in (0, 1]", f.scale)
	}
	if f.layers < 0 || f.experts < 0 || f.files < 0 {
		return s, errors.New("--layers, --experts and --files cannot be negative")
	}
	if f.dtype != "" {
		s.Dtype = f.dtype
	}
	if f.bits != 0 && s.Quant != nil {
		s.Quant.Bits = f.bits
	}
	if f.float {
		s.Quant = nil
	}
	full := s
	fullBytes := s.Sum(s.Tensors()).Bytes
	s = s.Scale(f.scale)
	if f.layers > 0 {
		s.Layers = f.layers
		s.FirstDense = min(s.FirstDense, s.Layers)
	}
	if f.experts > 0 {
		s.Experts = f.experts
		s.ActiveExperts = min(s.ActiveExperts, s.Experts)
	}
	switch {
	case f.files > 0:
		s.Files = f.files
	case !reflect.DeepEqual(s, full):
		// Keep the full model's bytes per file.
		perFile := float64(fullBytes) / float64(full.Files)
		s.Files = max(1, int(math.Round(float64(s.Sum(s.Tensors()).Bytes)/perFile)))
	}
	if err := s.Validate(); err != nil {
		return s, err
	}
	if _, err := s.Layout(); err != nil {
		return s, err
	}
	return s, nil
}

func run(f flags, stdout, stderr io.Writer) error {
	s, err := buildSpec(f)
	if err != nil {
		return err
	}
	if f.describe {
		describe(stdout, s)
		return nil
	}
	if f.out == "" {
		return errors.New("--out DIR is required (or --describe to only list the tensors)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bar := newProgressBar(stderr)
	start := time.Now()
	res, err := ckptgen.Write(ctx, f.out, s, &ckptgen.Options{
		Seed: f.seed, Progress: bar.update, Parallel: f.parallel, Force: f.force,
	})
	bar.finish()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("interrupted; nothing was left that looks complete, run again to start over")
		}
		return err
	}
	if res.Skipped {
		fmt.Fprintf(stdout, "%s already holds this checkpoint: %d files, %s; nothing written (--force rewrites)\n",
			res.Dir, len(res.Files), units.FormatGB(res.FileBytes))
		return nil
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "wrote %s: %d files, %s in %s (%.0f MB/s)\n", res.Dir, len(res.Files),
		units.FormatGB(res.FileBytes), el.Round(time.Millisecond), float64(res.FileBytes)/1e6/el.Seconds())
	return nil
}

func describe(w io.Writer, s ckptgen.Spec) {
	ts := s.Tensors()
	for _, t := range ts {
		dims := make([]string, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = fmt.Sprint(d)
		}
		fmt.Fprintf(w, "%s %s [%s] %d\n", t.Name, t.Dtype, strings.Join(dims, ","), t.Bytes)
	}
	sum := s.Sum(ts)
	fmt.Fprintf(w, "total: %d tensors, %d bytes (%s), %d parameters (%.3f T), %d files of about %s\n",
		sum.Tensors, sum.Bytes, units.FormatGB(sum.Bytes), sum.Params, float64(sum.Params)/1e12,
		s.Files, units.FormatGB(sum.Bytes/int64(s.Files)))
}

// progressBar draws one line on w, at most five times a second:
// [#####-----]  42.0%  12.34 GB / 29.38 GB  1234 MB/s  ETA 14s
type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
	drawn bool
	done  int64
	total int64
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, start: time.Now()}
}

func (p *progressBar) update(done, total int64) {
	p.done, p.total = done, total
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond || done == total {
		p.last = now
		p.draw()
	}
}

func (p *progressBar) draw() {
	if p.total <= 0 {
		return
	}
	const width = 30
	frac := float64(p.done) / float64(p.total)
	n := int(frac * width)
	el := time.Since(p.start).Seconds()
	rate := float64(p.done) / max(el, 1e-9)
	eta := "--"
	if rate > 0 && p.done < p.total {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	} else if p.done == p.total {
		eta = "0s"
	}
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%%  %s / %s  %.0f MB/s  ETA %s   ",
		strings.Repeat("#", n), strings.Repeat("-", width-n), 100*frac,
		units.FormatGB(p.done), units.FormatGB(p.total), rate/1e6, eta)
	p.drawn = true
}

func (p *progressBar) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
