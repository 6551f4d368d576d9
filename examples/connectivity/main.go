// Command connectivity checks that every rank of a distributed job can reach
// the others: each rank all-sums rank+1, so n ranks must all print
// n(n+1)/2, then its active memory, then PASSED.
//
//	bin/launch -n 2 -- bin/connectivity
//	bin/launch --hostfile hosts.json -- bin/connectivity
//	mlx.launch --backend ring -n 2 -- ./connectivity
//
// Output of a healthy two-rank job (each line also carries the launcher's
// rank prefix):
//
//	[Rank 0/2] all_sum result: 3.0 (expected: 3.0)
//	[Rank 0/2] Active memory: 0.00 GB
//	[Rank 0/2] Distributed test PASSED
//
// The back-end is the one the launcher set up (MLX_HOSTFILE: ring;
// MLX_IBV_DEVICES: jaccl, or jaccl-ring with MLX_JACCL_RING); --backend
// decides only when no launcher set one up, and asking for a back-end other
// than the launcher's is an error, never a silent switch.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connectivity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backend := fs.String("backend", "", "back-end when no launcher set one up: jaccl, jaccl-ring, ring, nccl, mpi or any (default: the launcher's, else jaccl)")
	strict := fs.Bool("strict", true, "fail instead of running as a group of one when the back-end cannot start")
	timeout := fs.Duration("timeout", jaccl.DefaultTimeout, "give up when the all-sum takes longer than this (a peer is hung)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: connectivity [flags]

Run as every rank of a distributed job. Each rank all-sums rank+1 and checks
the result against n(n+1)/2; a wrong sum prints FAILED and exits with status 1.

examples:
  bin/launch -n 2 -- bin/connectivity
  bin/launch --hostfile hosts.json -- bin/connectivity
  mlx.launch --backend ring -n 2 -- ./connectivity

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
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "connectivity: unexpected argument %q (see --help)\n", fs.Arg(0))
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "connectivity: --timeout %v: give a positive duration such as 60s\n", *timeout)
		return 2
	}
	b, err := chooseBackend(*backend, jaccl.EnvBackend())
	if err != nil {
		fmt.Fprintln(stderr, "connectivity:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := check(ctx, b, *strict, *timeout, stdout); err != nil {
		fmt.Fprintln(stderr, "connectivity:", err)
		return 1
	}
	return 0
}

// chooseBackend returns the back-end to initialise. A launcher's environment
// wins; an explicit flag that contradicts it is passed on so that Init
// reports the mismatch.
func chooseBackend(flagValue string, launched jaccl.Backend) (jaccl.Backend, error) {
	if flagValue != "" {
		return cluster.ParseBackend(flagValue)
	}
	if launched != "" {
		return launched, nil
	}
	return jaccl.JACCL, nil
}

func check(ctx context.Context, b jaccl.Backend, strict bool, timeout time.Duration, stdout io.Writer) error {
	g, err := jaccl.Init(ctx, jaccl.Options{Backend: b, Strict: strict, Timeout: timeout})
	if err != nil {
		return err
	}
	defer g.Close()
	rank, n := g.Rank(), g.Size()

	sum, err := jaccl.AllSumSlice(ctx, g, []float32{float32(rank) + 1})
	if err != nil {
		return err
	}
	expected := float32(n*(n+1)) / 2
	fmt.Fprintf(stdout, "[Rank %d/%d] all_sum result: %.1f (expected: %.1f)\n", rank, n, sum[0], expected)

	active, err := mlx.ActiveMemory()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "[Rank %d/%d] Active memory: %s\n", rank, n, units.FormatGB(active))

	if sum[0] != expected {
		fmt.Fprintf(stdout, "[Rank %d/%d] Distributed test FAILED\n", rank, n)
		return fmt.Errorf("rank %d of %d: all_sum gave %.1f, want %.1f", rank, n, sum[0], expected)
	}
	fmt.Fprintf(stdout, "[Rank %d/%d] Distributed test PASSED\n", rank, n)
	return nil
}
