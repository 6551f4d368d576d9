// Command launch starts every rank of a distributed MLX program: N ranks on
// this machine, or one rank per host of a hostfile in mlx.launch's format.
// Each output line is prefixed with its rank; when a rank fails the others
// are stopped and launch exits with the failed rank's status.
//
//	launch -n 2 -- ./connectivity
//	launch --hostfile hosts.json -- ./kimiload --model DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mlxdist/mlxdist/jaccl"
)

type envList []string

func (e *envList) String() string { return strings.Join(*e, ",") }

func (e *envList) Set(s string) error {
	name, _, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not NAME=value", s)
	}
	*e = append(*e, s)
	return nil
}

func main() {
	fs := flag.NewFlagSet("launch", flag.ContinueOnError)
	n := fs.Int("n", 0, "start `N` ranks on this machine (127.0.0.1, free ports)")
	hostfile := fs.String("hostfile", "", "start one rank per host of `FILE` (mlx.launch's JSON format)")
	backend := fs.String("backend", "", "back-end: ring, jaccl, jaccl-ring or nccl (default: the hostfile's, else ring)")
	verbose := fs.Bool("verbose", false, "log rank starts and exits, and ask the back-end to log (MLX_RING_VERBOSE, NCCL_DEBUG)")
	cwd := fs.String("cwd", "", "working `DIR` of every rank (default: this directory, where it exists)")
	port := fs.Int("port", 0, "first ring port and jaccl coordinator port on remote hosts (default 32323)")
	grace := fs.Duration("grace", 5*time.Second, "time a stopped rank gets between SIGTERM and SIGKILL")
	var env envList
	fs.Var(&env, "env", "export `NAME=value` on every rank (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: launch (-n N | --hostfile FILE) [flags] -- CMD [ARGS...]

Starts CMD as every rank of a distributed MLX job, with the environment the
back-end reads (MLX_RANK, MLX_WORLD_SIZE, MLX_HOSTFILE for ring;
MLX_IBV_DEVICES and MLX_JACCL_COORDINATOR for jaccl). Rank 0 starts first.
Hosts other than 127.0.0.1/localhost are reached over ssh, in the same
working directory. Output lines are prefixed with "[rank] ". If a rank fails
the others are stopped and launch exits with that rank's status.

examples:
  launch -n 2 -- ./connectivity
  launch --hostfile hosts.json -- ./kimiload --model DIR
  launch -n 4 -- python train.py

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	if err := run(fs.Args(), *n, *hostfile, *backend, *verbose, *cwd, *port, *grace, env); err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		var re *jaccl.RankError
		if errors.As(err, &re) {
			os.Exit(re.ExitStatus())
		}
		os.Exit(1)
	}
}

func run(command []string, n int, hostfile, backend string, verbose bool, cwd string, port int, grace time.Duration, env []string) error {
	if len(command) == 0 {
		return errors.New("no command given: put it after --, as in launch -n 2 -- ./connectivity")
	}
	if (n > 0) == (hostfile != "") {
		return errors.New("give exactly one of -n N and --hostfile FILE")
	}
	cfg := jaccl.LaunchConfig{Command: command, N: n, Env: env, Verbose: verbose, Dir: cwd, Port: port, Grace: grace}
	if hostfile != "" {
		hf, err := jaccl.ReadHostfile(hostfile)
		if err != nil {
			return err
		}
		cfg.Hostfile = hf
	}
	if backend != "" {
		b, err := jaccl.ParseBackend(backend)
		if err != nil {
			return err
		}
		cfg.Backend = b
	}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return jaccl.Launch(ctx, cfg)
}
