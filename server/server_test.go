package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/tokenizer"
)

func randomIDs(rng *rand.Rand, n, vocab int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	return ids
}

// TestServerOverTwoRanks runs one server over two ring ranks and drives it
// with the openai client and plain HTTP; every answer is checked against
// model.Generate run over two ranks on the same prompts and settings.
func TestServerOverTwoRanks(t *testing.T) {
	requireRing(t)
	dir := checkpoint(t)
	tok, err := tokenizer.Load(dir)
	require.NoError(t, err)
	stop := stopIDs(t, dir, tok)
	rng := rand.New(rand.NewPCG(5, 6))

	chatMsgs := []tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "What is 2+2?"}}
	rendered, err := tok.ApplyChatTemplate(chatMsgs, true)
	require.NoError(t, err)
	seed := uint64(11)
	orders := []order{
		{Prompt: randomIDs(rng, 6, 1024), MaxTokens: 24},                                // greedy completion from ids
		{Prompt: tok.EncodePrompt(rendered), MaxTokens: 16},                             // greedy chat
		{Prompt: tok.Encode("Once upon a time"), MaxTokens: 20, Temp: 0.8, Seed: &seed}, // seeded sampling
	}
	for i := range 8 {
		orders = append(orders, order{Prompt: randomIDs(rng, 3+i, 1024), MaxTokens: 6 + i})
	}
	// mlx-lm's logits processors, which every rank must apply alike.
	penalized := len(orders)
	pen := model.Penalties{Repetition: 1.3, Presence: 0.5, PresenceContext: 8, Frequency: 0.2,
		LogitBias: map[int]float64{7: 2.5, 300: -1}}
	orders = append(orders, order{Prompt: append(randomIDs(rng, 5, 1024), 7, 7, 300), MaxTokens: 20, Penalties: pen})
	ref := reference(t, orders)
	want := make([]expected, len(ref))
	for i, ids := range ref {
		want[i] = expect(tok, stop, ids)
	}
	j := startServer(t)

	check := func(t *testing.T, w expected, promptTokens int, got map[string]any) {
		t.Helper()
		require.NotContains(t, got, "error")
		assert.Equal(t, w.Text, got["text"])
		assert.Equal(t, w.FinishReason, got["finish_reason"])
		require.IsType(t, map[string]any{}, got["usage"])
		u := got["usage"].(map[string]any)
		assert.EqualValues(t, promptTokens, u["prompt_tokens"])
		assert.EqualValues(t, w.CompletionTokens, u["completion_tokens"])
		assert.EqualValues(t, promptTokens+w.CompletionTokens, u["total_tokens"])
	}
	msgs := []map[string]string{}
	for _, m := range chatMsgs {
		msgs = append(msgs, map[string]string{"role": m.Role, "content": m.Content})
	}

	t.Run("the openai client gets model.Generate's tokens, whole and streamed", func(t *testing.T) {
		completion := map[string]any{"model": testModelName, "prompt": orders[0].Prompt, "max_tokens": 24, "temperature": 0}
		chat := map[string]any{"model": testModelName, "messages": msgs, "max_tokens": 16, "temperature": 0}
		sampled := map[string]any{"model": testModelName, "prompt": "Once upon a time", "max_tokens": 20,
			"temperature": 0.8, "seed": 11}
		streamChat := map[string]any{"stream_options": map[string]any{"include_usage": true}}
		for k, v := range chat {
			streamChat[k] = v
		}
		res, models := openaiCalls(t, j.base, false, []map[string]any{
			{"kind": "completion", "args": completion},
			{"kind": "completion", "stream": true, "args": withUsage(completion)},
			{"kind": "chat", "args": chat},
			{"kind": "chat", "stream": true, "args": streamChat},
			{"kind": "completion", "args": sampled},
			{"kind": "chat", "args": map[string]any{"model": "no-such-model", "messages": msgs}},
		})
		assert.Equal(t, []string{testModelName}, models)
		check(t, want[0], len(orders[0].Prompt), res[0])
		check(t, want[0], len(orders[0].Prompt), res[1])
		check(t, want[1], len(orders[1].Prompt), res[2])
		check(t, want[1], len(orders[1].Prompt), res[3])
		check(t, want[2], len(orders[2].Prompt), res[4])
		assert.EqualValues(t, http.StatusNotFound, res[5]["status"], "an unknown model: %v", res[5])
		assert.Equal(t, testModelName, res[0]["model"])
		assert.Greater(t, res[1]["chunks"], float64(2), "a stream comes in several chunks")
	})

	t.Run("a stop sequence ends the text before it", func(t *testing.T) {
		full := want[0].Text
		// A filler token's text ("<|t345|>") from the middle of the answer.
		var stopText string
		for _, id := range ref[0][4:] {
			if id > 257 {
				stopText = tok.Decode([]int{id})
				break
			}
		}
		require.NotEmpty(t, stopText, "no filler token in %v", ref[0])
		cut := strings.Index(full, stopText)
		require.GreaterOrEqual(t, cut, 0)
		args := map[string]any{"model": testModelName, "prompt": orders[0].Prompt, "max_tokens": 24, "temperature": 0, "stop": []string{"never", stopText}}
		res, _ := openaiCalls(t, j.base, false, []map[string]any{
			{"kind": "completion", "args": args},
			{"kind": "completion", "stream": true, "args": args},
		})
		for _, r := range res {
			assert.Equal(t, full[:cut], r["text"])
			assert.Equal(t, "stop", r["finish_reason"])
		}
	})

	t.Run("mlx-lm's penalties and logit bias reach every rank", func(t *testing.T) {
		o := orders[penalized]
		status, got := post(t, j.base, "/v1/completions",
			fmt.Sprintf(`{"prompt": %s, "max_tokens": %d, "temperature": 0, "repetition_penalty": 1.3, "presence_penalty": 0.5, `+
				`"presence_context_size": 8, "frequency_penalty": 0.2, "logit_bias": {"7": 2.5, "300": -1}}`, idsJSON(o.Prompt), o.MaxTokens))
		require.Equal(t, http.StatusOK, status, "%v", got)
		choice := got["choices"].([]any)[0].(map[string]any)
		assert.Equal(t, want[penalized].Text, choice["text"])
		// The penalties change the answer: the check could fail.
		plain := reference(t, []order{{Prompt: o.Prompt, MaxTokens: o.MaxTokens}})
		assert.NotEqual(t, plain[0], ref[penalized], "the penalties changed nothing on this prompt")
	})

	t.Run("the neutral values of settings this server lacks change nothing", func(t *testing.T) {
		for _, extra := range []string{
			`"presence_penalty": 0, "frequency_penalty": 0.0, "repetition_penalty": 1, "logit_bias": {}, "logprobs": false, "top_logprobs": 0, "tools": []`,
			`"repetition_penalty": 0, "logprobs": 0, "echo": false, "best_of": 1, "suffix": ""`,
		} {
			status, got := post(t, j.base, "/v1/completions",
				fmt.Sprintf(`{"prompt": %s, "max_tokens": 24, "temperature": 0, %s}`, idsJSON(orders[0].Prompt), extra))
			require.Equal(t, http.StatusOK, status, "%v", got)
			choice := got["choices"].([]any)[0].(map[string]any)
			assert.Equal(t, want[0].Text, choice["text"], extra)
		}
	})

	t.Run("eight concurrent clients all get complete, correct answers", func(t *testing.T) {
		var calls []map[string]any
		for i, o := range orders[3:penalized] {
			calls = append(calls, map[string]any{"kind": "completion", "stream": i%2 == 1,
				"args": withUsage(map[string]any{"model": testModelName, "prompt": o.Prompt, "max_tokens": o.MaxTokens, "temperature": 0})})
		}
		res, _ := openaiCalls(t, j.base, true, calls)
		for i, r := range res {
			check(t, want[3+i], len(orders[3+i].Prompt), r)
		}
	})

	t.Run("a client that leaves mid-stream does not disturb the next request", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s := openStream(t, ctx, j.base, "/v1/completions",
			fmt.Sprintf(`{"prompt": %s, "max_tokens": 200, "temperature": 0, "stream": true}`, idsJSON(orders[3].Prompt)))
		for range 2 {
			_, ok := s.next()
			require.True(t, ok)
		}
		cancel()
		s.close()
		status, got := post(t, j.base, "/v1/completions",
			fmt.Sprintf(`{"prompt": %s, "max_tokens": 24, "temperature": 0}`, idsJSON(orders[0].Prompt)))
		require.Equal(t, http.StatusOK, status, "%v", got)
		choice := got["choices"].([]any)[0].(map[string]any)
		assert.Equal(t, want[0].Text, choice["text"])
		assert.Equal(t, want[0].FinishReason, choice["finish_reason"])
		checkInStep(t, j)
	})

	t.Run("a full queue answers 429 and the queued requests still complete", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// A long stream holds the group; once its first chunk is here it
		// is generating, not queued.
		s := openStream(t, ctx, j.base, "/v1/completions",
			fmt.Sprintf(`{"prompt": %s, "max_tokens": 200, "temperature": 0, "stream": true}`, idsJSON(orders[4].Prompt)))
		_, ok := s.next()
		require.True(t, ok)
		statuses := make([]int, testMaxQueue+1)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Go(func() {
				resp, err := http.Post(j.base+"/v1/completions", "application/json",
					strings.NewReader(fmt.Sprintf(`{"prompt": %s, "max_tokens": 2, "temperature": 0}`, idsJSON(orders[5].Prompt))))
				if err == nil {
					statuses[i] = resp.StatusCode
					resp.Body.Close()
				}
				if resp != nil && resp.StatusCode == http.StatusTooManyRequests {
					cancel() // let the queue drain
				}
			})
		}
		wg.Wait()
		s.close()
		count := map[int]int{}
		for _, st := range statuses {
			count[st]++
		}
		assert.Equal(t, map[int]int{http.StatusOK: testMaxQueue, http.StatusTooManyRequests: 1}, count)
	})

	t.Run("every bad input gets its status and an OpenAI error", func(t *testing.T) {
		long := idsJSON(randomIDs(rng, testMaxContext+10, 1024))
		short := idsJSON(orders[0].Prompt)
		huge := `{"prompt": "` + strings.Repeat("a", testMaxBody) + `"}`
		for _, tc := range []struct {
			name, path, body string
			status           int
			param, code      string
		}{
			{"malformed JSON", "/v1/chat/completions", `{"messages": [`, 400, "", ""},
			{"a field of the wrong type", "/v1/chat/completions", `{"messages": [{"role":"user","content":"hi"}], "max_tokens": "ten"}`, 400, "max_tokens", ""},
			{"messages that are not a list", "/v1/chat/completions", `{"messages": "hi"}`, 400, "messages", ""},
			{"no messages", "/v1/chat/completions", `{"messages": []}`, 400, "messages", ""},
			{"content of an unknown part type", "/v1/chat/completions", `{"messages": [{"role":"user","content":[{"type":"image_url"}]}]}`, 400, "messages[0].content", ""},
			{"a prompt longer than the context", "/v1/completions", `{"prompt": ` + long + `}`, 400, "prompt", "context_length_exceeded"},
			{"a prompt and max_tokens past the context", "/v1/completions", `{"prompt": ` + short + `, "max_tokens": 300}`, 400, "max_tokens", "context_length_exceeded"},
			{"an unknown model", "/v1/completions", `{"model": "gpt-4", "prompt": "hi"}`, 404, "model", "model_not_found"},
			{"max_tokens of zero", "/v1/completions", `{"prompt": "hi", "max_tokens": 0}`, 400, "max_tokens", ""},
			{"negative max_completion_tokens", "/v1/chat/completions", `{"messages": [{"role":"user","content":"hi"}], "max_completion_tokens": -1}`, 400, "max_completion_tokens", ""},
			{"a body over the limit", "/v1/completions", huge, 413, "", ""},
			{"several choices", "/v1/completions", `{"prompt": "hi", "n": 2}`, 400, "n", ""},
			{"a negative temperature", "/v1/completions", `{"prompt": "hi", "temperature": -1}`, 400, "temperature", ""},
			{"a token outside the vocabulary", "/v1/completions", `{"prompt": [1, 5000]}`, 400, "prompt", ""},
			{"an empty prompt", "/v1/completions", `{"prompt": ""}`, 400, "prompt", ""},
			{"five stop sequences", "/v1/completions", `{"prompt": "hi", "stop": ["a","b","c","d","e"]}`, 400, "stop", ""},
			{"an unknown path", "/v1/embeddings", `{}`, 404, "", "unknown_url"},
			{"a negative repetition penalty", "/v1/completions", `{"prompt": "hi", "repetition_penalty": -1.1}`, 400, "repetition_penalty", ""},
			{"a penalty context of zero", "/v1/completions", `{"prompt": "hi", "presence_penalty": 0.5, "presence_context_size": 0}`, 400, "presence_context_size", ""},
			{"a logit bias for no token", "/v1/completions", `{"prompt": "hi", "logit_bias": {"5000": 10}}`, 400, "logit_bias", ""},
			{"a logit bias keyed by a word", "/v1/completions", `{"prompt": "hi", "logit_bias": {"hello": 10}}`, 400, "logit_bias", ""},
			{"chat logprobs", "/v1/chat/completions", `{"messages": [{"role":"user","content":"hi"}], "logprobs": true}`, 400, "logprobs", "unsupported_parameter"},
			{"completion logprobs", "/v1/completions", `{"prompt": "hi", "logprobs": 3}`, 400, "logprobs", "unsupported_parameter"},
			{"top logprobs", "/v1/chat/completions", `{"messages": [{"role":"user","content":"hi"}], "top_logprobs": 2}`, 400, "top_logprobs", "unsupported_parameter"},
			{"echo", "/v1/completions", `{"prompt": "hi", "echo": true}`, 400, "echo", "unsupported_parameter"},
			{"best_of", "/v1/completions", `{"prompt": "hi", "best_of": 3}`, 400, "best_of", "unsupported_parameter"},
			{"a suffix", "/v1/completions", `{"prompt": "hi", "suffix": "end"}`, 400, "suffix", "unsupported_parameter"},
			{"tools", "/v1/chat/completions", `{"messages": [{"role":"user","content":"hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]}`, 400, "tools", "unsupported_parameter"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, got := post(t, j.base, tc.path, tc.body)
				assert.Equal(t, tc.status, status, "%v", got)
				require.IsType(t, map[string]any{}, got["error"], "%v", got)
				e := got["error"].(map[string]any)
				assert.NotEmpty(t, e["message"])
				assert.NotEmpty(t, e["type"])
				if tc.param != "" {
					assert.Equal(t, tc.param, e["param"])
				}
				if tc.code != "" {
					assert.Equal(t, tc.code, e["code"])
				}
			})
		}
		resp, err := http.Get(j.base + "/v1/chat/completions")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})

	t.Run("health and models answer", func(t *testing.T) {
		resp, err := http.Get(j.base + "/health")
		require.NoError(t, err)
		var h map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "ok", h["status"])
	})

	t.Run("SIGTERM ends the stream in flight and every rank exits cleanly", func(t *testing.T) {
		s := openStream(t, context.Background(), j.base, "/v1/chat/completions",
			fmt.Sprintf(`{"messages": [{"role":"user","content":"hi"}], "max_tokens": 200, "temperature": 0, "stream": true}`))
		defer s.close()
		_, ok := s.next()
		require.True(t, ok)
		require.NoError(t, syscall.Kill(j.pid(t, 0), syscall.SIGTERM))
		var finish string
		var events int
		for {
			d, ok := s.next()
			if !ok || d == "[DONE]" {
				break
			}
			events++
			var c struct {
				Choices []struct {
					FinishReason *string `json:"finish_reason"`
				} `json:"choices"`
			}
			require.NoError(t, json.Unmarshal([]byte(d), &c), d)
			if len(c.Choices) > 0 && c.Choices[0].FinishReason != nil {
				finish = *c.Choices[0].FinishReason
			}
		}
		assert.Equal(t, "stop", finish)
		assert.Less(t, events, 200, "the generation was stopped, not finished")
		assert.NoError(t, <-j.done, j.output())
		j.done <- nil
	})
}

func withUsage(args map[string]any) map[string]any {
	out := map[string]any{"stream_options": map[string]any{"include_usage": true}}
	for k, v := range args {
		out[k] = v
	}
	return out
}

// TestRankDeathAnswers503 kills rank 1 in the middle of a streamed answer:
// the stream ends with an error event, the next request gets 503, and the
// job exits non-zero instead of hanging.
func TestRankDeathAnswers503(t *testing.T) {
	j, s := midStream(t)
	require.NoError(t, syscall.Kill(j.pid(t, 1), syscall.SIGKILL))
	last := s.last()
	assert.Contains(t, last, `"error"`, "the stream's last event")
	assert.Contains(t, last, `"unavailable"`, "the stream's last event")
	// Rank 0 may already have exited, refusing the connection; while it
	// is up, it answers 503.
	resp, err := http.Post(j.base+"/v1/completions", "application/json", strings.NewReader(`{"prompt": [1, 2, 3], "max_tokens": 2}`))
	if err == nil {
		resp.Body.Close()
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	}
	err = <-j.done
	require.Error(t, err, "the job must fail when a rank dies")
	j.done <- err
}

// TestAStoppedServerEndsAStalledStreamWith503 freezes rank 1 in the middle
// of a streamed answer, so that rank 0 waits inside a collective that will
// not finish, then stops rank 0 as a launcher would: the client still
// hears why its answer ended, within the server's stop wait, instead of
// seeing its connection dropped when rank 0 is killed.
func TestAStoppedServerEndsAStalledStreamWith503(t *testing.T) {
	j, s := midStream(t)
	require.NoError(t, syscall.Kill(j.pid(t, 1), syscall.SIGSTOP))
	// Let the step already computed reach the client: from here on rank 0
	// is inside a collective rank 1 never joins.
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, syscall.Kill(j.pid(t, 0), syscall.SIGTERM))
	stopped := time.Now()
	last := s.last()
	// Within the stop wait and well before the launcher's default grace
	// (5 s) would run out; without it the stream ends only when the
	// group's watchdog ends rank 0, a minute later.
	assert.Less(t, time.Since(stopped), 4*time.Second, "the answer ended before the launcher's grace ran out")
	assert.Contains(t, last, `"unavailable"`, "the stream's last event")
	assert.Contains(t, last, "the server is stopping and the model gave nothing within 1s", "the stream's last event")
}

// TestStopsLeaveTheRanksInStep ends requests every way rank 0 alone can
// decide — a stop sequence, a client gone mid-stream — and checks that
// the request after each is still model.Generate's, which it would not be
// if the ranks had left the generation at different tokens.
func TestStopsLeaveTheRanksInStep(t *testing.T) {
	requireRing(t)
	dir := checkpoint(t)
	tok, err := tokenizer.Load(dir)
	require.NoError(t, err)
	prompt := randomIDs(rand.New(rand.NewPCG(8, 9)), 5, 1024)
	ref := reference(t, []order{{Prompt: prompt, MaxTokens: 20}})
	want := expect(tok, stopIDs(t, dir, tok), ref[0])
	j := startServer(t)
	body := func(extra string) string {
		return fmt.Sprintf(`{"prompt": %s, "max_tokens": 20, "temperature": 0%s}`, idsJSON(prompt), extra)
	}
	answer := func(t *testing.T, extra string) map[string]any {
		t.Helper()
		status, got := post(t, j.base, "/v1/completions", body(extra))
		require.Equal(t, http.StatusOK, status, "%v", got)
		return got["choices"].([]any)[0].(map[string]any)
	}

	assert.Equal(t, want.Text, answer(t, "")["text"], "max tokens 20")
	stopText := tok.Decode(ref[0][7:8])
	cut := strings.Index(want.Text, stopText)
	require.GreaterOrEqual(t, cut, 0)
	got := answer(t, fmt.Sprintf(`, "stop": %q`, stopText))
	assert.Equal(t, want.Text[:cut], got["text"])
	assert.Equal(t, "stop", got["finish_reason"])
	assert.Equal(t, want.Text, answer(t, "")["text"], "after a stop sequence")

	ctx, cancel := context.WithCancel(context.Background())
	s := openStream(t, ctx, j.base, "/v1/completions", fmt.Sprintf(`{"prompt": %s, "max_tokens": 200, "temperature": 0, "stream": true}`, idsJSON(prompt)))
	_, ok := s.next()
	require.True(t, ok)
	cancel()
	s.close()
	got = answer(t, "")
	assert.Equal(t, want.Text, got["text"], "after a client left")
	assert.Equal(t, want.FinishReason, got["finish_reason"])
	checkInStep(t, j)
}
