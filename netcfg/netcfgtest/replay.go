// Package netcfgtest answers netcfg's commands from recorded output, so that
// tests (netcfg's own, and those of programs built on it) run the real
// discovery, planning and verification code against what real machines
// printed, without touching a network interface.
//
//	r := &netcfgtest.ReplayRunner{Dir: "testdata/two-studios"}
//	st, err := netcfg.Discover(ctx, r, "studio-1")
//	...
//	for _, call := range r.MutatingCalls() {
//		fmt.Println(call.Node, call.Command) // what would have changed a machine
//	}
package netcfgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mlxdist/mlxdist/netcfg"
)

// A Call is one command a ReplayRunner was asked to run.
type Call struct {
	Node    string
	Command netcfg.Command
}

// ReplayRunner answers commands from recorded output files instead of
// running them: a command `NAME ARGS...` on node N reads
// Dir/N/NAME_ARG1_ARG2.txt (arguments joined with "_", characters other
// than letters, digits, '-' and '.' turned into '_') and falls back to
// Dir/N/NAME.txt. A missing recording is an error, as a failing command
// would be. Mutating commands (IsMutating) are never looked up: they are
// recorded and succeed, so a test can assert exactly what would have run.
type ReplayRunner struct {
	Dir string

	mu    sync.Mutex
	calls []Call
}

// Run replays the recorded output of the command on node.
func (r *ReplayRunner) Run(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.calls = append(r.calls, Call{Node: node, Command: netcfg.Command{Program: name, Args: append([]string(nil), args...)}})
	r.mu.Unlock()
	if netcfg.IsMutating(name, args) {
		return nil, nil
	}
	specific := name
	for _, a := range args {
		specific += "_" + sanitize(a)
	}
	for _, base := range []string{specific, name} {
		b, err := os.ReadFile(filepath.Join(r.Dir, node, base+".txt"))
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return nil, &netcfg.CommandError{Node: node, Command: netcfg.Command{Program: name, Args: args}, Err: os.ErrNotExist, Stderr: "no recorded output"}
}

// Calls returns every command the runner was asked to run, in order.
func (r *ReplayRunner) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// MutatingCalls returns the calls that would have changed a machine.
func (r *ReplayRunner) MutatingCalls() []Call {
	var out []Call
	for _, c := range r.Calls() {
		if netcfg.IsMutating(c.Command.Program, c.Command.Args) {
			out = append(out, c)
		}
	}
	return out
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, s)
}
