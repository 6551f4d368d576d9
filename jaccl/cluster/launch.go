package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/mlxdist/mlxdist/internal/oneline"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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
	// InitTimeout is how long the ranks may take to form their group; 0
	// means DefaultInitTimeout. Every rank gets it as InitTimeoutEnv, and
	// the launcher ends the job when a local rank of a program built on
	// this package has not joined once it has passed (see Launch).
	InitTimeout time.Duration
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
	// SSH is ssh's own error line when a remote rank's ssh failed (exit
	// status 255): an unknown host, a refused connection, a rejected key.
	SSH string
	// NotJoined lists the local ranks that had not joined the group when
	// this rank failed, when the program reports joining (see JoinedEnv).
	NotJoined []int

	signal int
}

func (e *RankError) Error() string {
	msg := fmt.Sprintf("launch: rank %d (%s)", e.Rank, e.Host)
	if e.State != "" {
		msg += " failed: " + e.State
	} else {
		msg += " could not start: " + e.Err.Error()
	}
	if e.SSH != "" {
		msg += ": " + e.SSH
	}
	if len(e.NotJoined) > 0 {
		msg += "; " + rankList(e.NotJoined) + " never joined the group"
	}
	if e.Hint != nil {
		msg += "; " + e.Hint.Error()
	}
	return msg
}

// rankList reads "rank 1" or "ranks 1, 2, 3, 4 and 3 more".
func rankList(ranks []int) string {
	s := make([]string, len(ranks))
	for i, r := range ranks {
		s[i] = strconv.Itoa(r)
	}
	if len(s) == 1 {
		return "rank " + s[0]
	}
	return "ranks " + oneline.List(s, 4)
}

// JoinError reports local ranks that had not joined the group when the
// init timeout passed (and every rank was still running): stopped, stuck
// before init, or waiting on a peer that is. The launcher stopped the job.
type JoinError struct {
	Ranks   []int
	Hosts   []string
	Timeout time.Duration
}

func (e *JoinError) Error() string {
	return fmt.Sprintf("launch: %s (%s) did not join the group within %v; the job was stopped (raise --init-timeout for slow starts)",
		rankList(e.Ranks), oneline.List(slices.Compact(slices.Clone(e.Hosts)), 3), e.Timeout)
}

// Is makes errors.Is(err, ErrInitTimeout) true.
func (e *JoinError) Is(target error) bool { return target == ErrInitTimeout }

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
//
// Every rank gets the init timeout (cfg.InitTimeout) as InitTimeoutEnv, so
// Init ends a rank whose group does not form, and local ranks get a
// JoinedEnv path to mark joining: a rank's failure then names the local
// ranks that never joined (RankError.NotJoined), and when ranks are still
// unjoined well past the timeout with none failed (all stuck at once),
// Launch stops the job and returns a *JoinError. Programs that never call
// Init (Python scripts) leave no marks and are left alone.
func Launch(ctx context.Context, cfg LaunchConfig) error {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return errors.New("launch: no command to launch")
	}
	hf := cfg.Hostfile
	switch {
	case hf != nil && cfg.N > 0:
		return errors.New("launch: set either a rank count or a hostfile, not both")
	case hf == nil && cfg.N <= 0:
		return errors.New("launch: need a rank count above zero or a hostfile")
	case hf == nil:
		hf = LocalHostfile(cfg.N)
	}
	backend := resolveBackend(cfg.Backend, hf.Backend)
	if backend == MPI {
		return errors.New("launch: the mpi back-end is launched by mpirun, not by this launcher")
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
			return fmt.Errorf("launch: %w", err)
		}
		dir = wd
	}
	if strictDir && anyLocal(hf) {
		// Otherwise exec's chdir failure reads as if the program were missing.
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("launch: working directory %s does not exist here; it must exist on every host", dir)
		}
	}

	initTimeout := cfg.InitTimeout
	rankEnv := cfg.Env
	if initTimeout != 0 {
		rankEnv = append(slices.Clone(cfg.Env), InitTimeoutEnv+"="+initTimeout.String())
	} else {
		initTimeout = DefaultInitTimeout
	}
	opt := EnvOptions{Backend: backend, Port: cfg.Port, NCCLPort: cfg.NCCLPort, Env: rankEnv, Verbose: cfg.Verbose}
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
		return fmt.Errorf("launch: %w", err)
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
			p.joinMark = filepath.Join(tmp, "rank"+strconv.Itoa(r))
			env = append(env, JoinedEnv+"="+p.joinMark)
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
				return fmt.Errorf("launch: %w", err)
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

	var failed error
	stopping := false
	done := ctx.Done()
	// The join watchdog: local ranks of a program built on this package
	// mark when they enter Init and when their group has formed. Once the
	// init timeout, plus a margin for the ranks' own timeouts to speak
	// first, has passed since the first rank entered Init, ranks still
	// unjoined stop the job: this catches every rank stuck at once, which
	// no rank's own timeout can report.
	var joinCheck <-chan time.Time
	var joinTimer *time.Timer
	if initTimeout > 0 {
		joinTimer = time.NewTimer(initTimeout + joinMargin)
		defer joinTimer.Stop()
		joinCheck = joinTimer.C
	}
	for remaining := len(ranks); remaining > 0; {
		select {
		case res := <-results:
			remaining--
			p := ranks[res.rank]
			log.Info("rank exited", "rank", p.rank, "state", p.cmd.ProcessState.String())
			if res.err != nil && !stopping {
				re := p.failure(res.err)
				if js := joinStatus(ranks, p.rank); js.tracking {
					re.NotJoined = js.named()
				}
				failed = re
				stopping = true
				stopOthers(ranks, grace)
			}
		case <-joinCheck:
			js := joinStatus(ranks, -1)
			switch waited := time.Since(js.firstInit); {
			case stopping || (js.tracking && len(js.missing) == 0):
				joinCheck = nil
			case !js.tracking:
				joinTimer.Reset(initTimeout)
			case waited < initTimeout+joinMargin:
				joinTimer.Reset(initTimeout + joinMargin - waited)
			default:
				je := &JoinError{Ranks: js.named(), Timeout: initTimeout}
				for _, r := range je.Ranks {
					je.Hosts = append(je.Hosts, ranks[r].host)
				}
				log.Info("ranks did not join", "ranks", je.Ranks)
				failed = je
				stopping = true
				joinCheck = nil
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
		return fmt.Errorf("launch: stopped: %w", err)
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

// joinMargin is how long the launcher's join watchdog waits past the init
// timeout, so that a rank's own, more specific, timeout error comes first.
const joinMargin = 3 * time.Second

// joinState is what the join marks of the local ranks say.
type joinState struct {
	tracking  bool      // some rank marked entering Init: the program reports joins
	firstInit time.Time // when the first rank entered Init
	missing   []int     // local ranks without a joined mark
	absent    []int     // those of missing that never entered Init
}

// joinStatus reads the join marks of the local ranks, leaving out skip.
func joinStatus(ranks []*rankProc, skip int) joinState {
	var js joinState
	for _, p := range ranks {
		if p.joinMark == "" {
			continue
		}
		if st, err := os.Stat(p.joinMark + ".init"); err == nil {
			if !js.tracking || st.ModTime().Before(js.firstInit) {
				js.firstInit = st.ModTime()
			}
			js.tracking = true
		} else if p.rank != skip {
			js.absent = append(js.absent, p.rank)
		}
		if _, err := os.Stat(p.joinMark); err == nil {
			js.tracking = true
		} else if p.rank != skip {
			js.missing = append(js.missing, p.rank)
		}
	}
	return js
}

// named returns the ranks to blame: those that never entered Init when
// there are any, else every rank still waiting.
func (js joinState) named() []int {
	var absent []int
	for _, r := range js.absent {
		if slices.Contains(js.missing, r) {
			absent = append(absent, r)
		}
	}
	if len(absent) > 0 {
		return absent
	}
	return js.missing
}

type rankProc struct {
	rank     int
	host     string
	joinMark string // path prefix of a local rank's join marks (JoinedEnv), "" for a remote one
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
	if p.stdin != nil && re.ExitCode == 255 {
		// ssh's own status for a failure of its own: its last line says
		// what (an unknown host, a refused connection, a rejected key).
		re.SSH = p.tail.last()
	}
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

func anyLocal(hf *Hostfile) bool {
	for _, h := range hf.Hosts {
		if isLocalHost(h.SSH) {
			return true
		}
	}
	return false
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
			return nil, fmt.Errorf("launch: picking a free port on %s: %w", a, err)
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
// connection closes: stopping ssh then stops the rank. LogLevel=ERROR keeps
// ssh's own errors (an unknown host, a refused connection) and drops its
// chatter ("Connection to host closed").
func SSHArgs(host, script string) []string {
	return []string{"-tt", "-o", "LogLevel=ERROR", host, script}
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

// last returns the last line that is not blank.
func (t *tailLines) last() string {
	for i := len(t.lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(t.lines[i]); l != "" {
			return l
		}
	}
	return ""
}
