package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/server"
	"github.com/mlxdist/mlxdist/tokenizer"
)

// The test binary doubles as the rank program cluster.Launch starts: with
// SERVE_TEST_HELPER set it runs one rank's job instead of the tests.
func TestMain(m *testing.M) {
	if job := os.Getenv("SERVE_TEST_HELPER"); job != "" {
		if err := rankMain(job); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	for _, dir := range ckptDirs {
		os.RemoveAll(filepath.Dir(dir))
	}
	os.Exit(code)
}

// The servers under test bound the context and the queue low, so that
// their limits are quick to reach.
const (
	testMaxContext = 256
	testMaxQueue   = 8
	testMaxBody    = 64 << 10
	testModelName  = "tiny-llama"
)

// chatML is a ChatML chat template (Qwen2's, without its default system
// prompt), written into the test checkpoint's tokenizer_config.json.
const chatML = `{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

var (
	ckptMu   sync.Mutex
	ckptDirs = map[int]string{}
)

// checkpoint writes, once per test binary, a float32 Llama checkpoint small
// enough to generate fast and wide enough for two ranks, with a chat
// template.
func checkpoint(t testing.TB) string { return deepCheckpoint(t, 2) }

// deepCheckpoint is checkpoint with the given number of layers, written
// once per binary for each.
func deepCheckpoint(t testing.TB, layers int) string {
	t.Helper()
	ckptMu.Lock()
	defer ckptMu.Unlock()
	if dir, ok := ckptDirs[layers]; ok {
		return dir
	}
	root, err := os.MkdirTemp("", "server-test-")
	require.NoError(t, err)
	dir := filepath.Join(root, "llama")
	// bfloat16, the dtype real checkpoints have.
	spec := ckptgen.Spec{ModelType: ckptgen.LlamaType, Vocab: 1024, Hidden: 128, Layers: layers, Heads: 4, KVHeads: 2,
		HeadDim: 32, Intermediate: 256, Dtype: "BF16", Files: 1}
	_, err = ckptgen.Write(context.Background(), dir, spec, &ckptgen.Options{Seed: 11})
	if err != nil {
		os.RemoveAll(root)
	}
	require.NoError(t, err)
	path := filepath.Join(dir, "tokenizer_config.json")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(b, &cfg))
	cfg["chat_template"] = chatML
	b, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	ckptDirs[layers] = dir
	return dir
}

func requireRing(t *testing.T) {
	t.Helper()
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX: %v", err)
	}
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		testenv.Unavailable(t, "MLX has no ring back-end: %v", err)
	}
	testenv.Python(t)
}

// rankMain is one rank of a launched job.
func rankMain(job string) error {
	ctx := context.Background()
	g, err := jaccl.Init(ctx, jaccl.Options{Strict: true})
	if err != nil {
		return err
	}
	defer g.Close()
	fmt.Printf("rank %d pid %d\n", g.Rank(), os.Getpid())
	dir := os.Getenv("SERVE_TEST_DIR")
	m, err := model.Load(ctx, dir, model.Options{Group: g})
	if err != nil {
		return err
	}
	defer m.Free()
	switch job {
	case "generate":
		return referenceRank(ctx, g, m)
	case "serve", "bench":
		tok, err := tokenizer.Load(dir)
		if err != nil {
			return err
		}
		if job == "bench" {
			return benchRank(g, m, tok)
		}
		return serveRank(g, m, tok)
	}
	return fmt.Errorf("unknown job %q", job)
}

// order is one generation of the reference job.
type order struct {
	Prompt    []int           `json:"prompt"`
	MaxTokens int             `json:"max_tokens"`
	Temp      float64         `json:"temp"`
	Seed      *uint64         `json:"seed,omitempty"`
	Penalties model.Penalties `json:"penalties"`
}

// referenceRank generates every order with model.Generate over the group,
// with no stop token, and rank 0 writes the ids.
func referenceRank(ctx context.Context, g *jaccl.Group, m *model.Model) error {
	var orders []order
	if err := json.Unmarshal([]byte(os.Getenv("SERVE_TEST_ORDERS")), &orders); err != nil {
		return err
	}
	var out [][]int
	for _, o := range orders {
		smp := model.Sampling{Temp: o.Temp, Seed: o.Seed}
		gen := m.Generate(ctx, o.Prompt, model.GenerateOptions{MaxTokens: o.MaxTokens, Sampling: smp, Penalties: o.Penalties, Stop: []int{}})
		var ids []int
		for tok, err := range gen.Tokens() {
			if err != nil {
				return err
			}
			ids = append(ids, tok.ID)
		}
		out = append(out, ids)
	}
	if g.Rank() != 0 {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(os.Getenv("SERVE_TEST_OUT"), b, 0o644)
}

// serveRank serves until SIGTERM reaches rank 0 (the other ranks ignore
// it and follow rank 0) or the group fails.
func serveRank(g *jaccl.Group, m *model.Model, tok *tokenizer.Tokenizer) error {
	// Rank 0 logs its request lines, the others their Debug lines of the
	// tokens they followed.
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.New(m, tok, server.Options{ModelName: testModelName, MaxContext: testMaxContext,
		MaxQueue: testMaxQueue, MaxBodyBytes: testMaxBody, Heartbeat: 100 * time.Millisecond, Logger: log})
	if err != nil {
		return err
	}
	if !s.Leader() {
		signal.Ignore(syscall.SIGTERM)
		return s.Run(context.Background())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s.Handler()}
	go hs.Serve(ln)
	fmt.Printf("listening %s\n", ln.Addr())
	err = s.Run(ctx)
	// Let the answers already decided (503s included) reach their clients.
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs.Shutdown(sctx)
	return err
}

// testJob is a launched server job.
type testJob struct {
	base string      // http://addr
	pids map[int]int // rank → process id
	done chan error  // Launch's result
	mu   sync.Mutex
	out  strings.Builder
	// more is closed, and replaced, whenever a line arrives.
	more chan struct{}
}

// waitLine returns the submatches of the first line of output matching re,
// waiting for it to arrive (the ranks' output comes through the launcher,
// after the answers it concerns).
func (j *testJob) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		j.mu.Lock()
		for _, line := range strings.Split(j.out.String(), "\n") {
			if m := re.FindStringSubmatch(line); m != nil {
				j.mu.Unlock()
				return m
			}
		}
		more := j.more
		j.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no line matching %s within a minute:\n%s", re, j.output())
		}
	}
}

// pid is rank's process id.
func (j *testJob) pid(t *testing.T, rank int) int {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.pids[rank]
	require.NotZero(t, p, "rank %d printed no pid", rank)
	return p
}

func (j *testJob) output() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.out.String()
}

var (
	pidLine    = regexp.MustCompile(`^\[\d+\] rank (\d+) pid (\d+)$`)
	listenLine = regexp.MustCompile(`^\[0\] listening (\S+)$`)
)

// startServer launches the server on two ranks and returns once rank 0
// listens. The job is stopped when the test ends.
func startServer(t *testing.T) *testJob {
	t.Helper()
	dir := checkpoint(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	pr, pw := io.Pipe()
	j := &testJob{pids: map[int]int{}, done: make(chan error, 1), more: make(chan struct{})}
	go func() {
		// The launcher's default grace: a rank 0 whose group hung answers
		// its clients within the server's stop wait, well inside it.
		err := cluster.Launch(ctx, cluster.LaunchConfig{
			Command: []string{os.Args[0]}, N: 2, Stdout: pw, Stderr: pw,
			Env: []string{"SERVE_TEST_HELPER=serve", "SERVE_TEST_DIR=" + dir},
		})
		pw.CloseWithError(io.EOF)
		j.done <- err
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			j.mu.Lock()
			j.out.WriteString(line + "\n")
			close(j.more)
			j.more = make(chan struct{})
			if m := pidLine.FindStringSubmatch(line); m != nil {
				r, _ := strconv.Atoi(m[1])
				p, _ := strconv.Atoi(m[2])
				j.pids[r] = p
			}
			j.mu.Unlock()
			if m := listenLine.FindStringSubmatch(line); m != nil {
				ready <- m[1]
			}
		}
		close(ready)
	}()
	t.Cleanup(func() {
		cancel()
		<-j.done
	})
	addr, ok := <-ready
	require.True(t, ok, "the server never listened:\n%s", j.output())
	j.base = "http://" + addr
	return j
}

// reference runs the orders with model.Generate over two ranks.
func reference(t *testing.T, orders []order) [][]int {
	t.Helper()
	dir := checkpoint(t)
	out := filepath.Join(t.TempDir(), "ref.json")
	b, err := json.Marshal(orders)
	require.NoError(t, err)
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err = cluster.Launch(ctx, cluster.LaunchConfig{
		Command: []string{os.Args[0]}, N: 2, Grace: 2 * time.Second, Stdout: &log, Stderr: &log,
		Env: []string{"SERVE_TEST_HELPER=generate", "SERVE_TEST_DIR=" + dir, "SERVE_TEST_ORDERS=" + string(b),
			"SERVE_TEST_OUT=" + out},
	})
	require.NoError(t, err, log.String())
	b, err = os.ReadFile(out)
	require.NoError(t, err)
	var ids [][]int
	require.NoError(t, json.Unmarshal(b, &ids))
	require.Len(t, ids, len(orders))
	return ids
}

// expected is what the server must answer for a reference generation.
type expected struct {
	Text             string
	FinishReason     string
	CompletionTokens int
}

// expect cuts a reference generation where the server stops: after the
// first stop token (which counts but is not text), or at max tokens.
func expect(tok *tokenizer.Tokenizer, stop []int, ids []int) expected {
	for i, id := range ids {
		if slices.Contains(stop, id) {
			return expected{tok.Decode(ids[:i]), "stop", i + 1}
		}
	}
	return expected{tok.Decode(ids), "length", len(ids)}
}

// stopIDs are the ids the server stops at: config.json's EOS and the
// tokenizer's.
func stopIDs(t *testing.T, dir string, tok *tokenizer.Tokenizer) []int {
	t.Helper()
	cfg, err := model.ReadConfig(dir)
	require.NoError(t, err)
	return append(slices.Clone(cfg.EOS), tok.EOS()...)
}

// openaiCalls runs calls through the official openai client.
func openaiCalls(t *testing.T, base string, concurrent bool, calls []map[string]any) ([]map[string]any, []string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "openai_client.py"))
	require.NoError(t, err)
	b, err := json.Marshal(map[string]any{"concurrent": concurrent, "calls": calls})
	require.NoError(t, err)
	src, err := os.ReadFile(script)
	require.NoError(t, err)
	out := testenv.RunPythonStdin(t, string(src), string(b), base+"/v1")
	var res struct {
		Results []map[string]any `json:"results"`
		Models  []string         `json:"models"`
	}
	require.NoError(t, json.Unmarshal(out, &res), string(out))
	require.Len(t, res.Results, len(calls))
	return res.Results, res.Models
}

// post sends body to path and returns the status and the decoded JSON.
func post(t *testing.T, base, path string, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v), "%s answered %d with %q", path, resp.StatusCode, b)
	return resp.StatusCode, v
}

// sse reads a server-sent event stream's data lines, one at a time.
type sse struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func openStream(t testing.TB, ctx context.Context, base, path, body string) *sse {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	return &sse{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next event's data, or false at the end.
func (s *sse) next() (string, bool) {
	for s.sc.Scan() {
		if d, ok := strings.CutPrefix(s.sc.Text(), "data: "); ok {
			return d, true
		}
	}
	return "", false
}

func (s *sse) close() { s.resp.Body.Close() }

// last reads the stream to its end and returns its last event's data
// before "[DONE]"; "" when there was none.
func (s *sse) last() string {
	var last string
	for {
		d, ok := s.next()
		if !ok || d == "[DONE]" {
			return last
		}
		last = d
	}
}

// midStream starts a server job and a long streamed completion, and
// returns once the first event has arrived.
func midStream(t *testing.T) (*testJob, *sse) {
	t.Helper()
	requireRing(t)
	j := startServer(t)
	s := openStream(t, context.Background(), j.base, "/v1/completions",
		`{"prompt": [1, 2, 3], "max_tokens": 200, "temperature": 0, "stream": true}`)
	t.Cleanup(s.close)
	_, ok := s.next()
	require.True(t, ok)
	return j, s
}

// checkInStep finds rank 0's line of the request that ended cancelled and
// the other rank's line of the same request: both ranks generated the same
// tokens, one past the last one rank 0 took before it decided to stop.
func checkInStep(t *testing.T, j *testJob) {
	t.Helper()
	m := j.waitLine(t, regexp.MustCompile(`^\[0\] .*msg=request .* seq=(\d+) .*completion_tokens=(\d+) generated=(\d+) finish_reason=cancelled`))
	sent, _ := strconv.Atoi(m[2])
	generated, _ := strconv.Atoi(m[3])
	f := j.waitLine(t, regexp.MustCompile(`^\[1\] .*msg=followed seq=`+m[1]+` generated=(\d+)`))
	followed, _ := strconv.Atoi(f[1])
	assert.Equal(t, generated, followed, "rank 1 generated what rank 0 did")
	assert.Positive(t, sent)
	assert.Equal(t, 1, generated-sent, "tokens generated after rank 0 decided to stop")
}

func idsJSON(ids []int) string {
	b, _ := json.Marshal(ids)
	return string(b)
}
