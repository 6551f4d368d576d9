package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
