// Command reshard writes one rank's shard of a checkpoint to its own
// directory, so that each node of a tensor-parallel cluster stores, and
// reads at load time, only its part of the weights.
//
//	reshard --model ~/models/Kimi-K2.5 --world 2 --rank 0 --out ~/models/Kimi-K2.5-tp2-rank0
//	reshard --model ~/models/Kimi-K2.5 --world 2 --out ~/models/Kimi-K2.5-tp2-rank{rank}   # every rank
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/loader/shard"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reshard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "source checkpoint `DIR` (safetensors files and model.safetensors.index.json)")
	out := fs.String("out", "", "destination `DIR`; {rank} in it is replaced by the rank")
	world := fs.Int("world", 2, "number of tensor-parallel ranks `N`")
	rank := fs.Int("rank", -1, "the rank to write; -1 writes every rank (then --out must contain {rank})")
	quiet := fs.Bool("quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: reshard --model DIR --out DIR [--world N] [--rank K]

Writes rank K's shard of a checkpoint (every tensor cut to the rank's part as
the loader's rules split it; replicated tensors whole) with its index, the
source's config and tokenizer files, and a stamp. The shard is built beside
DIR and moved into place when complete; DIR must be new, empty or an earlier
reshard's output, and outside the source. The loader and kimiload load
such a directory for that rank only, reading exactly its bytes: a rank's half
of a tensor split on its last axis no longer pulls every page of the full
tensor from disk. No MLX is needed.

examples:
  bin/reshard --model ~/models/Kimi-K2.5 --world 2 --rank 0 --out ~/models/Kimi-K2.5-tp2-rank0
  bin/reshard --model build/demo-kimi --world 2 --out build/demo-kimi-rank{rank}
  bin/launch -n 2 -- bin/kimiload --model build/demo-kimi-rank{rank} --verify

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "reshard:", err)
		return 1
	}
	switch {
	case *model == "" || *out == "":
		fmt.Fprintln(stderr, "reshard: --model and --out are required (see --help)")
		return 2
	case *world < 1:
		fmt.Fprintln(stderr, "reshard: --world must be at least 1")
		return 2
	case *rank >= *world || *rank < -1:
		fmt.Fprintf(stderr, "reshard: --rank %d is not a rank of %d\n", *rank, *world)
		return 2
	case *rank == -1 && *world > 1 && !strings.Contains(*out, "{rank}"):
		fmt.Fprintln(stderr, "reshard: writing every rank needs {rank} in --out")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ranks := []int{*rank}
	if *rank == -1 {
		ranks = ranks[:0]
		for k := range *world {
			ranks = append(ranks, k)
		}
	}
	for _, k := range ranks {
		dst := strings.ReplaceAll(*out, "{rank}", strconv.Itoa(k))
		start := time.Now()
		var progress func(done, total int64)
		if !*quiet {
			progress = func(done, total int64) {
				pct := 100 * float64(done) / float64(max(total, 1))
				fmt.Fprintf(stderr, "\rrank %d/%d: %s of %s (%.1f%%)   ", k, *world, units.FormatGB(done), units.FormatGB(total), pct)
			}
		}
		st, err := shard.Reshard(ctx, *model, dst, shard.PlanOptions{Rank: k, WorldSize: *world}, progress)
		if !*quiet {
			fmt.Fprintln(stderr)
		}
		if err != nil {
			return fail(err)
		}
		el := time.Since(start)
		fmt.Fprintf(stdout, "rank %d/%d: %d tensors, %s in %s (%.0f MB/s), rules %s\n", k, *world, st.Tensors,
			units.FormatGB(st.Bytes), dst, float64(st.Bytes)/1e6/max(el.Seconds(), 1e-9), st.Rules)
	}
	return 0
}
