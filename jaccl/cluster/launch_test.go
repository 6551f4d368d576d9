//go:build unix

package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

// The test binary doubles as the program the launcher starts: with
// JACCL_TEST_HELPER set it runs that mode instead of the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("JACCL_TEST_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	os.Exit(m.Run())
}

func helper(mode string) int {
	rank := os.Getenv("MLX_RANK")
	switch mode {
	case "print-env":
		content := "<none>"
		if p := os.Getenv("MLX_HOSTFILE"); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			content = strings.TrimSpace(string(b))
		}
		fmt.Printf("rank=%s size=%s hostfile=%s\n", rank, os.Getenv("MLX_WORLD_SIZE"), content)
		return 0
	case "print-nccl-env":
		fmt.Printf("rank=%s port=%s gpu=%s\n", rank, os.Getenv("NCCL_PORT"), os.Getenv("CUDA_VISIBLE_DEVICES"))
		return 0
	case "fail-rank-1":
		// Rank 1 fails; every other rank waits to be stopped.
		if rank == "1" {
			fmt.Fprintln(os.Stderr, "RuntimeError: [ring] Couldn't connect (error: 111)")
			return 3
		}
		fmt.Printf("pid=%d waiting\n", os.Getpid())
		for {
			time.Sleep(time.Hour)
		}
	case "sleep", "ignore-term":
		if mode == "ignore-term" {
			signal.Ignore(syscall.SIGTERM)
		}
		fmt.Printf("pid=%d waiting\n", os.Getpid())
		for {
			time.Sleep(time.Hour)
		}
	case "chatter":
		for i := range 200 {
			fmt.Fprintf(os.Stdout, "out %d\n", i)
			fmt.Fprintf(os.Stderr, "err %d\n", i)
		}
		fmt.Print("no newline at the end")
		return 0
	}
	return 2
}

// lockedBuffer collects launcher output and tells a waiting test when a
// pattern has been seen n times.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	pat  *regexp.Regexp
	want int
	seen chan struct{}
}

func newLockedBuffer(pat string, want int) *lockedBuffer {
	lb := &lockedBuffer{want: want, seen: make(chan struct{})}
	if pat != "" {
		lb.pat = regexp.MustCompile(pat)
	}
	return lb
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if l.pat != nil && l.want > 0 && len(l.pat.FindAllIndex(l.buf.Bytes(), -1)) >= l.want {
		l.want = 0
		close(l.seen)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *lockedBuffer) pids(t *testing.T) []int {
	t.Helper()
	var pids []int
	for _, m := range regexp.MustCompile(`pid=(\d+)`).FindAllStringSubmatch(l.String(), -1) {
		p, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		pids = append(pids, p)
	}
	return pids
}

func helperConfig(t *testing.T, mode string, n int, out *lockedBuffer) LaunchConfig {
	t.Helper()
	t.Setenv("JACCL_TEST_HELPER", mode)
	return LaunchConfig{Command: []string{os.Args[0]}, N: n, Stdout: out, Stderr: out, Grace: 2 * time.Second}
}

func assertGone(t *testing.T, pids []int) {
	t.Helper()
	for _, p := range pids {
		err := syscall.Kill(p, 0)
		assert.ErrorIs(t, err, syscall.ESRCH, "process %d is still running", p)
	}
}

func TestLaunchRunsPythonMLXRanksOverRing(t *testing.T) {
	py := testenv.Python(t)
	for _, tt := range []struct {
		n    int
		want string
	}{{2, "3.0"}, {4, "10.0"}} {
		t.Run(fmt.Sprintf("%d ranks all-sum to %s", tt.n, tt.want), func(t *testing.T) {
			out := newLockedBuffer("", 0)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			err := Launch(ctx, LaunchConfig{Command: []string{py, "testdata/allsum.py"}, N: tt.n, Stdout: out, Stderr: out})
			require.NoError(t, err, out.String())
			for r := range tt.n {
				assert.Contains(t, out.String(), fmt.Sprintf("[%d] [Rank %d/%d] all_sum result: %s\n", r, r, tt.n, tt.want))
			}
		})
	}
}

func TestLaunchStopsThePythonRanksWhenOneFails(t *testing.T) {
	py := testenv.Python(t)
	t.Setenv("ALLSUM_FAIL_RANK", "1")
	out := newLockedBuffer("", 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	err := Launch(ctx, LaunchConfig{Command: []string{py, "testdata/allsum.py"}, N: 3, Stdout: out, Stderr: out, Grace: 2 * time.Second})
	require.NoError(t, ctx.Err(), "the launcher returned only after the test's deadline")
	var re *RankError
	require.ErrorAs(t, err, &re, out.String())
	assert.Equal(t, 1, re.Rank)
	assert.Equal(t, 3, re.ExitCode)
	assert.Equal(t, 3, re.ExitStatus())
	assert.Equal(t, "exit status 3", re.State)
	assert.Contains(t, out.String(), "[1] [Rank 1/3] failing on purpose")
}

func TestLaunchStopsTheOtherRanksWhenOneFails(t *testing.T) {
	out := newLockedBuffer("", 0)
	cfg := helperConfig(t, "fail-rank-1", 4, out)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	err := Launch(ctx, cfg)
	require.NoError(t, ctx.Err(), "the launcher returned only after the test's deadline")
	var re *RankError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 1, re.Rank)
	assert.Equal(t, 3, re.ExitStatus())
	assert.Contains(t, err.Error(), "rank 1 (127.0.0.1) failed: exit status 3")

	// The rank's output named a known failure, so the error says what to do.
	assert.ErrorIs(t, err, ErrRingConnect)
	var be *BackendError
	require.ErrorAs(t, err, &be)
	assert.Contains(t, be.Fix, "start every rank")
	assertGone(t, out.pids(t))
}

func TestALocalNCCLJobGetsAFreePortAndAGPUPerRank(t *testing.T) {
	out := newLockedBuffer("", 0)
	cfg := helperConfig(t, "print-nccl-env", 2, out)
	cfg.Backend = NCCL
	require.NoError(t, Launch(context.Background(), cfg))
	var ports []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r, gpu int
		var port string
		_, err := fmt.Sscanf(strings.SplitN(line, "] ", 2)[1], "rank=%d port=%s gpu=%d", &r, &port, &gpu)
		require.NoError(t, err, line)
		assert.Equal(t, r, gpu, "rank %d sees only its own GPU", r)
		ports = append(ports, port)
	}
	require.Len(t, ports, 2)
	assert.Equal(t, ports[0], ports[1], "every rank meets at one port")
	assert.NotEqual(t, strconv.Itoa(NCCLPort), ports[0], "a local job takes a free port, not the fixed default")
}

func TestLaunchStopsEveryRankWhenTheContextIsCancelled(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		ranks      int
		grace      time.Duration
	}{
		{"ranks that stop on SIGTERM", "sleep", 3, 0},
		{"a rank that ignores SIGTERM gets SIGKILL", "ignore-term", 2, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := newLockedBuffer(`waiting`, tc.ranks)
			cfg := helperConfig(t, tc.mode, tc.ranks, out)
			if tc.grace > 0 {
				cfg.Grace = tc.grace
			}
			ctx, cancel := context.WithCancel(context.Background())
			deadline, stop := context.WithTimeout(context.Background(), 30*time.Second)
			defer stop()

			errc := make(chan error, 1)
			go func() { errc <- Launch(ctx, cfg) }()
			select {
			case <-out.seen:
			case <-deadline.Done():
				t.Fatalf("ranks did not start: %s", out.String())
			}
			cancel()
			select {
			case err := <-errc:
				assert.ErrorIs(t, err, context.Canceled)
			case <-deadline.Done():
				t.Fatal("Launch did not return after cancel")
			}
			assertGone(t, out.pids(t))
		})
	}
}

func TestLaunchPrefixesEveryLineWithItsRank(t *testing.T) {
	out := newLockedBuffer("", 0)
	cfg := helperConfig(t, "chatter", 3, out)
	require.NoError(t, Launch(context.Background(), cfg))

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	assert.Len(t, lines, 3*(400+1))
	line := regexp.MustCompile(`^\[[0-2]\] ((out|err) \d+|no newline at the end)$`)
	for _, l := range lines {
		assert.Regexp(t, line, l)
	}
	for r := range 3 {
		assert.Contains(t, out.String(), fmt.Sprintf("[%d] out 199\n", r))
		assert.Contains(t, out.String(), fmt.Sprintf("[%d] no newline at the end\n", r))
	}
}

func TestLaunchGivesEachLocalRankItsEnvironment(t *testing.T) {
	out := newLockedBuffer("", 0)
	cfg := helperConfig(t, "print-env", 2, out)
	t.Setenv("MLX_IBV_DEVICES", "/stale/from/the/parent")
	require.NoError(t, Launch(context.Background(), cfg))

	m := regexp.MustCompile(`\[0\] rank=0 size=2 hostfile=(\[.*\])`).FindStringSubmatch(out.String())
	require.NotNil(t, m, out.String())
	assert.Contains(t, out.String(), "[1] rank=1 size=2 hostfile="+m[1])
	assert.Regexp(t, `^\[\["127\.0\.0\.1:\d+"\],\["127\.0\.0\.1:\d+"\]\]$`, m[1])
}

func TestLaunchRejectsBadConfigurations(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)
	tests := []struct {
		name string
		cfg  LaunchConfig
		want string
	}{
		{"no command", LaunchConfig{N: 2}, "no command"},
		{"neither ranks nor hostfile", LaunchConfig{Command: []string{"true"}}, "rank count above zero or a hostfile"},
		{"both ranks and hostfile", LaunchConfig{Command: []string{"true"}, N: 2, Hostfile: hf}, "not both"},
		{"mpi", LaunchConfig{Command: []string{"true"}, N: 2, Backend: MPI}, "mpirun"},
		{"jaccl without a device matrix", LaunchConfig{Command: []string{"true"}, N: 2, Backend: JACCL}, "hosts[0].rdma"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			assert.ErrorContains(t, Launch(context.Background(), tt.cfg), tt.want)
		})
	}

	var re *RankError
	err = Launch(context.Background(), LaunchConfig{Command: []string{"/no/such/program"}, N: 2})
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 0, re.Rank)
	assert.Contains(t, err.Error(), "could not start")
	assert.Equal(t, 1, re.ExitStatus())
}

func TestRemoteScriptForTheSeedsSecondStudio(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)
	re, err := NewRankEnv(hf, 1, EnvOptions{})
	require.NoError(t, err)

	script := RemoteScript(re, "/Users/hw/mlx lm", true, []string{"./kimiload", "--model", "models/Kimi K2.5"})
	want := `cd '/Users/hw/mlx lm' || { echo 'no directory '` + `'/Users/hw/mlx lm' >&2; exit 1; }; ` +
		`export MLX_METAL_FAST_SYNCH=1; ` +
		`export MLX_JACCL_COORDINATOR=192.168.0.105:32323; ` +
		`export MLX_WORLD_SIZE=2; export MLX_RANK=1; ` +
		`f=$(mktemp) && printf '%s' '[[null,["rdma_en3","rdma_en5"]],[["rdma_en3","rdma_en5"],null]]` + "\n" + `' > "$f" || exit 1; export MLX_IBV_DEVICES="$f"; ` +
		`exec ./kimiload --model 'models/Kimi K2.5'`
	assert.Equal(t, want, script)
	assert.Equal(t, []string{"-tt", "-o", "LogLevel=ERROR", "hwStudio2.local", script}, SSHArgs("hwStudio2.local", script))
}

// Running the remote script with a local shell checks the quoting and the
// temporary file without ssh; ssh itself needs hosts this test does not have.
func TestRemoteScriptRunsInAPOSIXShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	hf := LocalHostfile(2)
	hf.Envs = []string{"QUOTED=it's a \"test\" $HOME"}
	re, err := NewRankEnv(hf, 1, EnvOptions{})
	require.NoError(t, err)
	dir := t.TempDir()

	script := RemoteScript(re, dir, true, []string{os.Args[0]})
	cmd := exec.Command(sh, "-c", script+"")
	cmd.Env = append(Environ(os.Environ(), nil), "JACCL_TEST_HELPER=print-env")
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, string(got))
	assert.Equal(t, `rank=1 size=2 hostfile=[["127.0.0.1:32323"],["127.0.0.1:32324"]]`+"\n", string(got))

	probe := strings.Replace(script, "exec "+ShellQuote(os.Args[0]), `printf '%s|%s' "$QUOTED" "$(pwd)"`, 1)
	got, err = exec.Command(sh, "-c", probe).CombinedOutput()
	require.NoError(t, err, string(got))
	realDir, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	assert.Equal(t, `it's a "test" $HOME|`+realDir, string(got))

	missing := RemoteScript(re, filepath.Join(dir, "absent"), true, []string{"true"})
	got, err = exec.Command(sh, "-c", missing).CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(got), "no directory")
}

// mlx.launch must be able to start our Go programs: the environment contract
// is the same in both directions.
func TestMLXLaunchStartsAGoProgram(t *testing.T) {
	py := testenv.Python(t)
	launcher := filepath.Join(filepath.Dir(py), "mlx.launch")
	if _, err := os.Stat(launcher); err != nil {
		testenv.Unavailable(t, "no mlx.launch next to %s", py)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, launcher, "--backend", "ring", "-n", "2", "--", os.Args[0])
	cmd.Env = append(Environ(os.Environ(), nil), "JACCL_TEST_HELPER=print-env")
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, string(got))

	for r := range 2 {
		m := regexp.MustCompile(fmt.Sprintf(`rank=%d size=\S* hostfile=(.*)`, r)).FindStringSubmatch(string(got))
		require.NotNil(t, m, string(got))
		assert.JSONEq(t, `[["127.0.0.1:32323"],["127.0.0.1:32324"]]`, m[1])
	}
	// Our own ring hostfile for the same job says the same thing.
	re, err := NewRankEnv(LocalHostfile(2), 0, EnvOptions{})
	require.NoError(t, err)
	assert.JSONEq(t, `[["127.0.0.1:32323"],["127.0.0.1:32324"]]`, string(re.Files[0].Content))
}

func TestRankErrorExitStatusForASignal(t *testing.T) {
	re := &RankError{Rank: 2, Host: "h", ExitCode: -1, State: "signal: killed", Err: errors.New("signal: killed"), signal: 9}
	assert.Equal(t, 137, re.ExitStatus())
	assert.Equal(t, "launch: rank 2 (h) failed: signal: killed", re.Error())
}
