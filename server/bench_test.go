package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/server"
	"github.com/mlxdist/mlxdist/tokenizer"
)

// BenchmarkGenerate sets what the server adds to a generation beside the
// generation alone, on one rank: "bare" iterates model.Generate, "served"
// asks the server for the same greedy tokens over HTTP, whole and
// streamed. Each reports tokens per second; their ratio is the server's
// overhead.
func BenchmarkGenerate(b *testing.B) {
	if err := mlx.Load(); err != nil {
		b.Skip("MLX:", err)
	}
	dir := checkpoint(b)
	ctx := context.Background()
	m, err := model.Load(ctx, dir, model.Options{})
	require.NoError(b, err)
	defer m.Free()
	tok, err := tokenizer.Load(dir)
	require.NoError(b, err)
	prompt := randomIDs(rand.New(rand.NewPCG(1, 2)), 32, m.Config.VocabSize)
	const n = 64

	b.Run("bare", func(b *testing.B) {
		var tokens int
		for b.Loop() {
			gen := m.Generate(ctx, prompt, model.GenerateOptions{MaxTokens: n})
			for _, err := range gen.Tokens() {
				require.NoError(b, err)
				tokens++
			}
		}
		b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
	})

	s, err := server.New(m, tok, server.Options{})
	require.NoError(b, err)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		require.NoError(b, <-done)
	}()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	body := fmt.Sprintf(`{"prompt": %s, "max_tokens": %d, "temperature": 0`, idsJSON(prompt), n)

	b.Run("served", func(b *testing.B) {
		var tokens int
		for b.Loop() {
			resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(body+"}"))
			require.NoError(b, err)
			var r struct {
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				} `json:"usage"`
			}
			require.NoError(b, json.NewDecoder(resp.Body).Decode(&r))
			resp.Body.Close()
			tokens += r.Usage.CompletionTokens
		}
		b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
	})

	b.Run("streamed", func(b *testing.B) {
		var tokens int
		var ttft time.Duration
		for b.Loop() {
			start := time.Now()
			s := openStream(b, ctx, ts.URL, "/v1/completions", body+`, "stream": true, "stream_options": {"include_usage": true}}`)
			first := true
			for {
				d, ok := s.next()
				if !ok || d == "[DONE]" {
					break
				}
				if first {
					ttft += time.Since(start)
					first = false
				}
				var c struct {
					Usage *struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				}
				require.NoError(b, json.Unmarshal([]byte(d), &c))
				if c.Usage != nil {
					tokens += c.Usage.CompletionTokens
				}
			}
			s.close()
		}
		b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
		b.ReportMetric(float64(ttft.Milliseconds())/float64(b.N), "ttft-ms")
	})
}

// BenchmarkTwoRanks measures, over two ring ranks, on checkpoints of two
// and eight layers, the server against model.Generate alone: rounds of a
// bare greedy generation alternate with the same request through the
// server (HTTP, the order to every rank, rank 0's halt flag in every
// step), on one job. It reports the best round of each in tokens per
// second and the server's overhead in percent. The job runs once whatever
// b.N is: run it with -benchtime 1x.
func BenchmarkTwoRanks(b *testing.B) {
	if err := mlx.Load(); err != nil {
		b.Skip("MLX:", err)
	}
	for _, layers := range []int{2, 8} {
		dir := deepCheckpoint(b, layers)
		b.Run(fmt.Sprintf("layers-%d", layers), func(b *testing.B) {
			var out strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			for b.Loop() {
				out.Reset()
				err := cluster.Launch(ctx, cluster.LaunchConfig{
					Command: []string{os.Args[0]}, N: 2, Grace: 2 * time.Second, Stdout: &out, Stderr: &out,
					Env: []string{"SERVE_TEST_HELPER=bench", "SERVE_TEST_DIR=" + dir},
				})
				require.NoError(b, err, out.String())
			}
			_, line, ok := strings.Cut(out.String(), "[0] bench ")
			require.True(b, ok, out.String())
			line, _, _ = strings.Cut(line, "\n")
			var r struct{ Bare, Served float64 }
			require.NoError(b, json.Unmarshal([]byte(line), &r))
			b.ReportMetric(r.Bare, "bare-tok/s")
			b.ReportMetric(r.Served, "served-tok/s")
			b.ReportMetric(100*(r.Bare-r.Served)/r.Bare, "overhead-%")
		})
	}
}

// benchRank is one rank of BenchmarkTwoRanks. Bare and served rounds
// alternate, each round a fresh server that rank 0 shuts down after one
// request, so that both see the same load on a busy machine.
func benchRank(g *jaccl.Group, m *model.Model, tok *tokenizer.Tokenizer) error {
	const rounds, n = 8, 64
	ctx := context.Background()
	prompt := randomIDs(rand.New(rand.NewPCG(1, 2)), 32, m.Config.VocabSize)
	body := fmt.Sprintf(`{"prompt": %s, "max_tokens": %d, "temperature": 0}`, idsJSON(prompt), n)
	best := func(rate *float64, tokens int, d time.Duration) { *rate = max(*rate, float64(tokens)/d.Seconds()) }
	var bare, served float64
	for range rounds {
		start := time.Now()
		tokens := 0
		for _, err := range m.Generate(ctx, prompt, model.GenerateOptions{MaxTokens: n, Stop: []int{}}).Tokens() {
			if err != nil {
				return err
			}
			tokens++
		}
		best(&bare, tokens, time.Since(start))

		s, err := server.New(m, tok, server.Options{})
		if err != nil {
			return err
		}
		if g.Rank() != 0 {
			if err := s.Run(ctx); err != nil {
				return err
			}
			continue
		}
		tokens, d, err := serveOnce(ctx, s, body)
		if err != nil {
			return err
		}
		best(&served, tokens, d)
	}
	if g.Rank() != 0 {
		return nil
	}
	b, err := json.Marshal(map[string]float64{"bare": bare, "served": served})
	if err != nil {
		return err
	}
	fmt.Printf("bench %s\n", b)
	return nil
}

// serveOnce runs s on rank 0 for one request of body and returns the
// tokens generated and the request's time.
func serveOnce(ctx context.Context, s *server.Server, body string) (int, time.Duration, error) {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	ts := httptest.NewServer(s.Handler())
	start := time.Now()
	resp, err := http.Post(ts.URL+"/v1/completions", "application/json", strings.NewReader(body))
	d := time.Since(start)
	var r struct {
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err == nil {
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
	}
	ts.Close()
	stop()
	if rerr := <-done; err == nil {
		err = rerr
	}
	return r.Usage.CompletionTokens, d, err
}
