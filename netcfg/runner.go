package netcfg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"os"
	"os/exec"
	"strings"
)

// A Runner runs one command on one node and returns its standard output.
// It is the only way netcfg touches a machine, so every plan, apply, verify
// and reconcile step can be replayed from recorded output in tests and
// printed instead of run in a dry run.
type Runner interface {
	Run(ctx context.Context, node, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands on this machine, ignoring the node name. It is
// what the boot-time reconcile uses, running as root from launchd.
type ExecRunner struct{}

// Run runs name with args locally. A non-zero exit is an error carrying the
// command's standard error.
func (ExecRunner) Run(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	// The output is parsed: ask for it in the C locale, whatever the
	// user's language, so that words and number formats are the ones the
	// parsers know.
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &CommandError{Node: node, Command: Command{Program: name, Args: args}, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return out, nil
}

// SSHRunner runs commands on remote nodes as `ssh HOST -- COMMAND`. Hosts maps
// a node name to its ssh destination; a node missing from Hosts is used as the
// destination itself. With Sudo, commands that change the machine (see
// IsMutating) run under `sudo -n`, so a missing password-less sudo fails at
// once instead of hanging on a prompt.
type SSHRunner struct {
	Hosts map[string]string
	Sudo  bool
	// Options are extra ssh options placed before the host, for example
	// []string{"-o", "BatchMode=yes"}.
	Options []string
}

// Run runs the command on node over ssh.
func (s SSHRunner) Run(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	host := node
	if h, ok := s.Hosts[node]; ok && h != "" {
		host = h
	}
	remote := append([]string{name}, args...)
	if s.Sudo && IsMutating(name, args) {
		remote = append([]string{"sudo", "-n"}, remote...)
	}
	// ssh joins its arguments with spaces and hands them to the remote
	// shell, so each one is quoted to arrive as exactly one argument.
	quoted := make([]string, len(remote))
	for i, a := range remote {
		quoted[i] = cluster.ShellQuote(a)
	}
	sshArgs := append(append(append([]string{}, s.Options...), host, "--"), quoted...)
	out, err := ExecRunner{}.Run(ctx, node, "ssh", sshArgs...)
	var ce *CommandError
	if errors.As(err, &ce) {
		ce.Command = Command{Program: name, Args: args}
	}
	return out, err
}

// IsMutating reports whether a command changes a machine. Only ifconfig with
// more than one argument does among the commands netcfg issues; discovery,
// verification and polling only read.
func IsMutating(name string, args []string) bool {
	return name == "ifconfig" && len(args) > 1
}

// A Command is one program invocation of a plan: never a shell string, so
// the safety check sees exactly the program and arguments that will run.
type Command struct {
	Program string   `json:"program"`
	Args    []string `json:"args"`
}

// String renders the command as a person would type it.
func (c Command) String() string {
	parts := []string{c.Program}
	for _, a := range c.Args {
		parts = append(parts, cluster.ShellQuote(a))
	}
	return strings.Join(parts, " ")
}

// CommandError is a command that failed on a node.
type CommandError struct {
	Node    string
	Command Command
	Err     error
	Stderr  string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("netcfg: %s on %s: %v", e.Command, e.Node, e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }
