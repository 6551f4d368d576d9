package jaccl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LaunchConfig describes a distributed job: which command every rank runs and
// where. Set either N (ranks on this machine) or Hostfile.
type LaunchConfig struct {
	// Command is the program and its arguments, run once per rank. Any
	// program works: a Go binary using this package, or python with an MLX
	// script.
	Command []string
	// N starts N ranks on this machine, on free ports of 127.0.0.1.
	N int
	// Hostfile starts one rank per host. Hosts named 127.0.0.1 or localhost
	// run directly; others over ssh.
	Hostfile *Hostfile
	// Backend overrides the hostfile's back-end; with neither set, ring.
	Backend Backend
	// Env holds extra "NAME=value" pairs for every rank.
	Env []string
	// Verbose asks the back-end to log (MLX_RING_VERBOSE, NCCL_DEBUG).
	Verbose bool
	// Dir is the working directory of every rank. Empty means the current
	// directory, which remote ranks enter when it exists there; a Dir that
	// is set must exist on every host.
	Dir string
	// Port is the first ring port and the jaccl coordinator port for
	// remote hosts; 0 means RingPort. Local-only jobs use free ports.
	Port int
	// NCCLPort is nccl's rendezvous port; 0 means NCCLPort.
	NCCLPort int
	// Stdout and Stderr receive every rank's output, each line prefixed
	// with "[rank] "; nil means os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Grace is how long a stopped rank has between SIGTERM and SIGKILL;
	// 0 means 5 seconds.
	Grace time.Duration
	// SSH is the ssh program; empty means "ssh" from PATH.
	SSH string
	// Logger receives one line per rank started and stopped; nil is silent.
	Logger *slog.Logger
}

// RankError reports a rank that failed: it could not start, or it exited
// with a non-zero status (the other ranks were then stopped).
type RankError struct {
	Rank int
	Host string
	// ExitCode is the rank's exit status, or -1 when it did not exit
	// normally (killed by a signal, or never started).
	ExitCode int
	// State is the process state in words ("exit status 3", "signal:
	// killed"), empty when the rank never started.
	State string
	// Err is the error from starting or waiting for the process.
	Err error
	// Hint is a *BackendError when the rank's output showed a known
	// back-end failure, nil otherwise.
	Hint error

	signal int
}

func (e *RankError) Error() string {
	msg := fmt.Sprintf("jaccl: rank %d (%s)", e.Rank, e.Host)
	if e.State != "" {
		msg += " failed: " + e.State
	} else {
		msg += " could not start: " + e.Err.Error()
	}
	if e.Hint != nil {
		msg += "; " + e.Hint.Error()
	}
	return msg
}

// Unwrap exposes the process error and the hint to errors.Is and errors.As.
func (e *RankError) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Hint != nil {
		errs = append(errs, e.Hint)
	}
	return errs
}

// ExitStatus is the status a launcher process should exit with to pass the
// rank's on: its exit code, 128+signal when it was killed, 1 otherwise.
func (e *RankError) ExitStatus() int {
	switch {
	case e.ExitCode > 0:
		return e.ExitCode
	case e.signal > 0:
		return 128 + e.signal
	}
	return 1
}

// Launch runs cfg.Command as every rank of a distributed job and waits for
// all of them. Rank 0 starts first (jaccl's other ranks retry rank 0's
// coordinator for about 15 seconds, so they may follow at once). When a rank
// fails, the others are stopped (SIGTERM to their process groups, SIGKILL
// after cfg.Grace) and Launch returns a *RankError for the rank that failed
// first. Cancelling ctx stops every rank the same way and returns ctx's
// error.
func Launch(ctx context.Context, cfg LaunchConfig) error {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return errors.New("jaccl: no command to launch")
	}
	hf := cfg.Hostfile
	switch {
	case hf != nil && cfg.N > 0:
		return errors.New("jaccl: set either a rank count or a hostfile, not both")
	case hf == nil && cfg.N <= 0:
		return errors.New("jaccl: need a rank count above zero or a hostfile")
	case hf == nil:
		hf = LocalHostfile(cfg.N)
	}
	backend := resolveBackend(cfg.Backend, hf.Backend)
	if backend == MPI {
		return errors.New("jaccl: the mpi back-end is launched by mpirun, not by this launcher")
	}
	if err := hf.Validate(backend); err != nil {
		return err
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	stdout, stderr := cfg.Stdout, cfg.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, strictDir := cfg.Dir, cfg.Dir != ""
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("jaccl: %w", err)
		}
		dir = wd
	}

	opt := EnvOptions{Backend: backend, Port: cfg.Port, NCCLPort: cfg.NCCLPort, Env: cfg.Env, Verbose: cfg.Verbose}
	if allLocal(hf) {
		// Several ranks of one machine cannot share mlx.launch's fixed
		// ports with a previous run still in TIME_WAIT or another job, so
		// every address gets a port the kernel just handed out.
		ports, err := freePorts(hf)
		if err != nil {
			return err
		}
		opt.Ports, opt.Port = ports, ports[0]
		if opt.NCCLPort == 0 && backend == NCCL {
			// The same goes for nccl's rendezvous port (nccl uses no ring
			// ports, so the first free one is its).
			opt.NCCLPort = ports[0]
		}
	}
	envs := make([]*RankEnv, len(hf.Hosts))
	for r := range hf.Hosts {
		re, err := NewRankEnv(hf, r, opt)
		if err != nil {
			return err
		}
		envs[r] = re
	}

	tmp, err := os.MkdirTemp("", "jaccl-launch-")
	if err != nil {
		return fmt.Errorf("jaccl: %w", err)
	}
	defer os.RemoveAll(tmp)

	var outMu sync.Mutex
	ranks := make([]*rankProc, 0, len(hf.Hosts))
	results := make(chan rankResult, len(hf.Hosts))
	for r, h := range hf.Hosts {
		p := &rankProc{rank: r, host: h.SSH, done: make(chan struct{})}
		p.out = &linePrefixer{mu: &outMu, w: stdout, prefix: rankPrefix(r), tail: &p.tail}
		p.err = &linePrefixer{mu: &outMu, w: stderr, prefix: rankPrefix(r), tail: &p.tail}
		if isLocalHost(h.SSH) {
			env, err := envs[r].Write(tmp)
			if err != nil {
				stopAll(ranks, grace, results)
				return err
			}
			p.cmd = exec.Command(cfg.Command[0], cfg.Command[1:]...)
			p.cmd.Env = Environ(os.Environ(), env)
			p.cmd.Dir = dir
		} else {
			script := RemoteScript(envs[r], dir, strictDir, cfg.Command)
			p.cmd = exec.Command(sshProgram(cfg.SSH), SSHArgs(h.SSH, script)...)
			// A stdin that stays open keeps ssh's forced terminal alive
			// until the rank ends; stopping ssh hangs up the remote side.
			r, w, err := os.Pipe()
			if err != nil {
				stopAll(ranks, grace, results)
				return fmt.Errorf("jaccl: %w", err)
			}
			p.cmd.Stdin, p.stdin = r, w
		}
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
		p.cmd.WaitDelay = grace
		setProcessGroup(p.cmd)
		err := p.cmd.Start()
		if f, ok := p.cmd.Stdin.(*os.File); ok {
			f.Close() // the child holds its own copy
		}
		if err != nil {
			if p.stdin != nil {
				p.stdin.Close()
			}
			stopAll(ranks, grace, results)
			return &RankError{Rank: r, Host: h.SSH, ExitCode: -1, Err: err}
		}
		log.Info("rank started", "rank", r, "host", h.SSH, "pid", p.cmd.Process.Pid)
		ranks = append(ranks, p)
		go p.wait(results)
	}

	var failed *RankError
	stopping := false
	done := ctx.Done()
	for remaining := len(ranks); remaining > 0; {
		select {
		case res := <-results:
			remaining--
			p := ranks[res.rank]
			log.Info("rank exited", "rank", p.rank, "state", p.cmd.ProcessState.String())
			if res.err != nil && !stopping {
				failed = p.failure(res.err)
				stopping = true
				stopOthers(ranks, grace)
			}
		case <-done:
			done = nil
			if !stopping {
				stopping = true
				stopOthers(ranks, grace)
			}
		}
	}
	if failed != nil {
		return failed
	}
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("jaccl: launch stopped: %w", err)
	}
	return nil
}

func resolveBackend(override, fromFile Backend) Backend {
	for _, b := range []Backend{override, fromFile} {
		if b != "" && b != Any {
			return b
		}
	}
	return Ring
}

type rankResult struct {
	rank int
	err  error
}

type rankProc struct {
	rank     int
	host     string
	cmd      *exec.Cmd
	stdin    *os.File // write end of a remote rank's stdin
	out, err *linePrefixer
	tail     tailLines
	done     chan struct{}
}

func (p *rankProc) wait(results chan<- rankResult) {
	err := p.cmd.Wait()
	p.out.Flush()
	p.err.Flush()
	if p.stdin != nil {
		p.stdin.Close()
	}
	close(p.done)
	results <- rankResult{rank: p.rank, err: err}
}

func (p *rankProc) failure(err error) *RankError {
	re := &RankError{Rank: p.rank, Host: p.host, ExitCode: -1, Err: err}
	if ps := p.cmd.ProcessState; ps != nil {
		re.ExitCode = ps.ExitCode()
		re.State = ps.String()
		re.signal = signalNumber(ps)
	}
	re.Hint = ExplainText(p.tail.String())
	return re
}

// stop asks the rank's process group to terminate and kills it after grace.
func (p *rankProc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = signalGroup(p.cmd.Process, false)
	go func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			_ = signalGroup(p.cmd.Process, true)
		}
	}()
}

func stopOthers(ranks []*rankProc, grace time.Duration) {
	for _, p := range ranks {
		p.stop(grace)
	}
}

// stopAll stops ranks already started when a later one cannot start, and
// waits for them.
func stopAll(ranks []*rankProc, grace time.Duration, results <-chan rankResult) {
	stopOthers(ranks, grace)
	for range ranks {
		<-results
	}
}

func rankPrefix(r int) []byte { return []byte("[" + strconv.Itoa(r) + "] ") }

func isLocalHost(h string) bool {
	return h == "127.0.0.1" || h == "localhost" || h == "::1"
}

func allLocal(hf *Hostfile) bool {
	for _, h := range hf.Hosts {
		if !isLocalHost(h.SSH) {
			return false
		}
	}
	return true
}

// freePorts picks one free TCP port per address of hf (at least one, for a
// coordinator). Every listener stays open until all are picked so no port is
// handed out twice.
func freePorts(hf *Hostfile) ([]int, error) {
	var addrs []string
	for _, h := range hf.Hosts {
		addrs = append(addrs, h.IPs...)
	}
	if len(addrs) == 0 {
		addrs = []string{"127.0.0.1"}
	}
	ports := make([]int, 0, len(addrs))
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for _, a := range addrs {
		l, err := net.Listen("tcp4", net.JoinHostPort(a, "0"))
		if err != nil {
			return nil, fmt.Errorf("jaccl: picking a free port on %s: %w", a, err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func sshProgram(s string) string {
	if s == "" {
		return "ssh"
	}
	return s
}

// SSHArgs returns the arguments of the ssh command that runs script on host.
// -tt forces a terminal so the remote program receives a hang-up when the
// connection closes: stopping ssh then stops the rank.
func SSHArgs(host, script string) []string {
	return []string{"-tt", "-o", "LogLevel=QUIET", host, script}
}

// RemoteScript returns the POSIX shell command a remote host runs for one
// rank: enter dir (or fail when strictDir), export the rank's variables,
// write each temporary file with mktemp and printf and export its path, then
// exec the command. It avoids bash-only syntax because ssh runs it in the
// user's login shell, which is zsh on macOS.
func RemoteScript(re *RankEnv, dir string, strictDir bool, command []string) string {
	var b strings.Builder
	qd := ShellQuote(dir)
	if strictDir {
		fmt.Fprintf(&b, "cd %s || { echo 'no directory '%s >&2; exit 1; }; ", qd, qd)
	} else {
		fmt.Fprintf(&b, "cd %s 2>/dev/null; ", qd)
	}
	for _, kv := range re.Vars {
		name, value, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s; ", name, ShellQuote(value))
	}
	for _, f := range re.Files {
		fmt.Fprintf(&b, "f=$(mktemp) && printf '%%s' %s > \"$f\" || exit 1; export %s=\"$f\"; ", ShellQuote(string(f.Content)), f.Name)
	}
	b.WriteString("exec")
	for _, a := range command {
		b.WriteString(" ")
		b.WriteString(ShellQuote(a))
	}
	return b.String()
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// ShellQuote quotes s for a POSIX shell: unchanged when it holds only safe
// characters, otherwise in single quotes with embedded ones escaped.
func ShellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// linePrefixer writes every complete line it receives to w in one Write,
// prefixed with the rank, so lines of different ranks never interleave. A
// trailing carriage return (from ssh's terminal) is dropped.
type linePrefixer struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
	tail   *tailLines
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes a last line that had no newline.
func (l *linePrefixer) Flush() {
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *linePrefixer) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	out := make([]byte, 0, len(l.prefix)+len(line)+1)
	out = append(append(append(out, l.prefix...), line...), '\n')
	l.mu.Lock()
	// A rank's output must not stop the job: a failed write is dropped.
	_, _ = l.w.Write(out)
	l.tail.add(string(line))
	l.mu.Unlock()
}

// tailLines keeps a rank's last lines for ExplainText. Guarded by the
// prefixers' shared mutex.
type tailLines struct {
	lines []string
}

const tailMax = 200

func (t *tailLines) add(s string) {
	if len(t.lines) == tailMax {
		t.lines = append(t.lines[:0], t.lines[1:]...)
	}
	t.lines = append(t.lines, s)
}

func (t *tailLines) String() string { return strings.Join(t.lines, "\n") }
