// Command launch starts every rank of a distributed MLX program: N ranks on
// this machine, or one rank per host of a hostfile in mlx.launch's format.
// Each output line is prefixed with its rank; when a rank fails the others
// are stopped and launch exits with the failed rank's status.
//
//	bin/launch -n 2 -- bin/connectivity
//	bin/launch --hostfile hosts.json -- bin/kimiload --model DIR
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

	"github.com/mlxdist/mlxdist/jaccl/cluster"
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
	initTimeout := fs.Duration("init-timeout", cluster.DefaultInitTimeout, "how long the ranks may take to form their group before the job is stopped")
	var env envList
	fs.Var(&env, "env", "export `NAME=value` on every rank (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: launch (-n N | --hostfile FILE) [flags] -- CMD [ARGS...]

Starts CMD as every rank of a distributed MLX job, with the environment the
back-end reads (MLX_RANK, MLX_WORLD_SIZE, MLX_HOSTFILE for ring;
MLX_IBV_DEVICES and MLX_JACCL_COORDINATOR for jaccl). Rank 0 starts first.
Hosts other than 127.0.0.1/localhost are reached over ssh, in the same
working directory. Output lines are prefixed with "[rank] ". If a rank fails
the others are stopped and launch exits with that rank's status. Ranks
that have not formed their group within --init-timeout (a rank stopped or
stuck before init) end the job too, naming them.

examples:
  bin/launch -n 2 -- bin/connectivity
  bin/launch --hostfile hosts.json -- bin/kimiload --model DIR
  bin/launch -n 4 -- python train.py

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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := checkFlags(set, *n, *port, *grace, *initTimeout); err != nil {
		fmt.Fprintln(os.Stderr, "launch:", err)
		os.Exit(2)
	}
	if err := run(fs.Args(), *n, *hostfile, *backend, *verbose, *cwd, *port, *grace, *initTimeout, env); err != nil {
		// The launcher's own errors already say "launch:".
		msg := err.Error()
		if !strings.HasPrefix(msg, "launch: ") {
			msg = "launch: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		var re *cluster.RankError
		if errors.As(err, &re) {
			os.Exit(re.ExitStatus())
		}
		os.Exit(1)
	}
}

// checkFlags refuses values no job can use, naming the flag.
func checkFlags(set map[string]bool, n, port int, grace, initTimeout time.Duration) error {
	switch {
	case set["n"] && n < 1:
		return fmt.Errorf("-n %d: a job needs at least one rank", n)
	case port < 0 || port > 65535:
		return fmt.Errorf("--port %d: a TCP port is 1 to 65535 (0 picks the default)", port)
	case grace < 0:
		return fmt.Errorf("--grace %v: give a duration of 0 or more", grace)
	case initTimeout <= 0:
		return fmt.Errorf("--init-timeout %v: give a positive duration such as 30s", initTimeout)
	}
	return nil
}

func run(command []string, n int, hostfile, backend string, verbose bool, cwd string, port int, grace, initTimeout time.Duration, env []string) error {
	if len(command) == 0 {
		return errors.New("no command given: put it after --, as in launch -n 2 -- bin/connectivity")
	}
	if (n > 0) == (hostfile != "") {
		return errors.New("give exactly one of -n N and --hostfile FILE")
	}
	cfg := cluster.LaunchConfig{Command: command, N: n, Env: env, Verbose: verbose, Dir: cwd, Port: port, Grace: grace, InitTimeout: initTimeout}
	if hostfile != "" {
		hf, err := cluster.ReadHostfile(hostfile)
		if err != nil {
			return err
		}
		cfg.Hostfile = hf
	}
	if backend != "" {
		b, err := cluster.ParseBackend(backend)
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
	return cluster.Launch(ctx, cfg)
}
