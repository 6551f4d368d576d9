package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/tokenizer"
)

// Handler returns the OpenAI-compatible API: POST /v1/chat/completions,
// POST /v1/completions, GET /v1/models (and /v1/models/{id}) and GET
// /health. Only rank 0 serves it, while Run runs.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", s.only(http.MethodPost, s.chat))
	mux.HandleFunc("/v1/completions", s.only(http.MethodPost, s.completions))
	mux.HandleFunc("/v1/models", s.only(http.MethodGet, s.models))
	mux.HandleFunc("/v1/models/{id}", s.only(http.MethodGet, s.modelByID))
	mux.HandleFunc("/health", s.only(http.MethodGet, s.health))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.reject(w, r, "", &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "unknown_url",
			Message: fmt.Sprintf("no endpoint %s %s: use /v1/chat/completions, /v1/completions, /v1/models or /health", r.Method, r.URL.Path)})
	})
	return mux
}

func (s *Server) only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			s.reject(w, r, "", &APIError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error",
				Message: fmt.Sprintf("%s takes %s, not %s", r.URL.Path, method, r.Method)})
			return
		}
		h(w, r)
	}
}

// reject answers a request with e and logs it.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, id string, e *APIError) {
	s.log.Info("request", "id", id, "path", r.URL.Path, "status", e.Status, "error", e.Message)
	writeError(w, e)
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"object": "list", "data": []any{s.modelObject()}})
}

func (s *Server) modelByID(w http.ResponseWriter, r *http.Request) {
	if e := s.checkModel(r.PathValue("id")); e != nil {
		s.reject(w, r, "", e)
		return
	}
	writeJSON(w, s.modelObject())
}

func (s *Server) modelObject() map[string]any {
	return map[string]any{"id": s.o.ModelName, "object": "model", "created": s.created, "owned_by": "mlxdist"}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if s.unavailable() {
		e := s.unavailableError(nil)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"status": "unavailable", "error": e.Message})
		return
	}
	writeJSON(w, map[string]any{"status": "ok", "model": s.o.ModelName, "queued": len(s.queue)})
}

func (s *Server) unavailable() bool {
	select {
	case <-s.done:
		return true
	default:
		return s.closing.Load()
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) checkModel(name string) *APIError {
	if name == "" || name == s.o.ModelName {
		return nil
	}
	return &APIError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("the model %q does not exist: this server serves %q", name, s.o.ModelName)}
}

// decode reads a request body of at most MaxBodyBytes into v.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) *APIError {
	r.Body = http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes)
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		return decodeError(err)
	}
	return nil
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	id := "chatcmpl-" + randomID()
	var req chatRequest
	if e := s.decode(w, r, &req); e != nil {
		s.reject(w, r, id, e)
		return
	}
	prompt, e := s.chatPrompt(&req)
	if e == nil {
		e = s.checkModel(req.Model)
	}
	if e != nil {
		s.reject(w, r, id, e)
		return
	}
	s.run(w, r, id, &req.params, prompt, "messages")
}

func (s *Server) chatPrompt(req *chatRequest) ([]int, *APIError) {
	if len(req.Messages) == 0 {
		return nil, invalid("messages", "messages is empty: send at least one message")
	}
	msgs := make([]tokenizer.Message, len(req.Messages))
	for i, m := range req.Messages {
		if m.Role == "" {
			return nil, invalid(fmt.Sprintf("messages[%d].role", i), "messages[%d] has no role", i)
		}
		text, e := m.text(i)
		if e != nil {
			return nil, e
		}
		msgs[i] = tokenizer.Message{Role: m.Role, Content: text}
	}
	if !s.tok.HasChatTemplate() {
		// A base model: the conversation as plain text, roles named.
		var b strings.Builder
		for _, m := range msgs {
			b.WriteString(m.Role + ": " + m.Content + "\n")
		}
		b.WriteString("assistant: ")
		return s.tok.Encode(b.String()), nil
	}
	text, err := s.tok.ApplyChatTemplate(msgs, true)
	if err != nil {
		return nil, invalid("messages", "the chat template cannot render these messages: %v", err)
	}
	return s.tok.EncodePrompt(text), nil
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	id := "cmpl-" + randomID()
	var req completionRequest
	if e := s.decode(w, r, &req); e != nil {
		s.reject(w, r, id, e)
		return
	}
	prompt, e := s.completionPrompt(req.Prompt)
	if e == nil {
		e = s.checkModel(req.Model)
	}
	if e != nil {
		s.reject(w, r, id, e)
		return
	}
	s.run(w, r, id, &req.params, prompt, "prompt")
}

// completionPrompt reads "prompt": a string or token ids, or a list of one
// of either.
func (s *Server) completionPrompt(raw json.RawMessage) ([]int, *APIError) {
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		return s.tok.Encode(text), nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err == nil {
		return ids, nil
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err == nil && len(texts) <= 1 {
		if len(texts) == 0 {
			return nil, nil
		}
		return s.tok.Encode(texts[0]), nil
	}
	var idLists [][]int
	if err := json.Unmarshal(raw, &idLists); err == nil && len(idLists) <= 1 {
		if len(idLists) == 0 {
			return nil, nil
		}
		return idLists[0], nil
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid("prompt", "prompt is missing: send a string or a list of token ids")
	}
	return nil, invalid("prompt", "prompt must be a string, a list of token ids, or a list of one of either (this server answers one prompt per request)")
}

// newJob checks a request's settings against the model and makes its job.
func (s *Server) newJob(r *http.Request, id string, p *params, prompt []int, promptParam string) (*job, *APIError) {
	vocab := s.m.Config.VocabSize
	if len(prompt) == 0 {
		return nil, invalid(promptParam, "the prompt has no tokens: send some text")
	}
	for _, t := range prompt {
		if t < 0 || t >= vocab {
			return nil, invalid(promptParam, "token id %d is outside the vocabulary of %d", t, vocab)
		}
	}
	if p.N != nil && *p.N != 1 {
		return nil, invalid("n", "n is %d: this server generates one choice per request", *p.N)
	}
	if e := p.unsupported(); e != nil {
		return nil, e
	}
	maxTokens, param := p.MaxTokens, "max_tokens"
	if p.MaxCompletionTokens != nil {
		maxTokens, param = p.MaxCompletionTokens, "max_completion_tokens"
	}
	if len(prompt) >= s.maxCtx {
		return nil, &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: promptParam, Code: "context_length_exceeded",
			Message: fmt.Sprintf("this model's maximum context length is %d tokens, but the prompt has %d: shorten it", s.maxCtx, len(prompt))}
	}
	n := min(s.o.DefaultMaxTokens, s.maxCtx-len(prompt))
	if maxTokens != nil {
		n = *maxTokens
		if n <= 0 {
			return nil, invalid(param, "%s is %d: ask for at least 1 token", param, n)
		}
		if len(prompt)+n > s.maxCtx {
			return nil, &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: "context_length_exceeded",
				Message: fmt.Sprintf("this model's maximum context length is %d tokens, but %d were asked for (%d in the prompt, %d in the completion): shorten the prompt or %s",
					s.maxCtx, len(prompt)+n, len(prompt), n, param)}
		}
	}
	smp := model.Sampling{Temp: 1, TopP: 1}
	if p.Temperature != nil {
		if t := *p.Temperature; t < 0 || t > 2 {
			return nil, invalid("temperature", "temperature %v is outside [0, 2]: 0 is greedy", t)
		}
		smp.Temp = *p.Temperature
	}
	if p.TopP != nil {
		if v := *p.TopP; v <= 0 || v > 1 {
			return nil, invalid("top_p", "top_p %v is outside (0, 1]", v)
		}
		smp.TopP = *p.TopP
	}
	if p.TopK != nil {
		if v := *p.TopK; v < 0 || v >= vocab {
			return nil, invalid("top_k", "top_k %d is outside 0..%d (0 turns it off)", v, vocab-1)
		}
		smp.TopK = *p.TopK
	}
	if p.MinP != nil {
		if v := *p.MinP; v < 0 || v > 1 {
			return nil, invalid("min_p", "min_p %v is outside [0, 1]", v)
		}
		smp.MinP = *p.MinP
	}
	seed := newSeed()
	if p.Seed != nil {
		seed = uint64(*p.Seed)
	}
	smp.Seed = &seed
	pen, e := p.penalties(vocab)
	if e != nil {
		return nil, e
	}
	stops, e := p.stops()
	if e != nil {
		return nil, e
	}
	return &job{id: id, ctx: r.Context(), prompt: prompt, maxTokens: n, sampling: smp, penalties: pen, stops: stops,
		events: make(chan event, n+4), enqueued: time.Now()}, nil
}

// run queues a request and writes its answer, whole or streamed.
// promptParam names the field the prompt came from: "messages" for a chat.
func (s *Server) run(w http.ResponseWriter, r *http.Request, id string, p *params, prompt []int, promptParam string) {
	chat := promptParam == "messages"
	j, e := s.newJob(r, id, p, prompt, promptParam)
	if e != nil {
		s.reject(w, r, id, e)
		return
	}
	if s.unavailable() {
		s.reject(w, r, id, s.unavailableError(nil))
		return
	}
	select {
	case s.queue <- j:
	default:
		s.reject(w, r, id, &APIError{Status: http.StatusTooManyRequests, Type: "rate_limit_exceeded", Code: "queue_full",
			Message: fmt.Sprintf("%d requests are already waiting: retry later", cap(s.queue))})
		return
	}
	a := &answer{s: s, w: w, r: r, j: j, chat: chat, model: s.o.ModelName, created: time.Now().Unix()}
	if p.Stream {
		a.usage = p.StreamOptions != nil && p.StreamOptions.IncludeUsage
		a.stream()
		return
	}
	a.whole()
}

// answer writes one request's response from its job's events.
type answer struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	j       *job
	chat    bool
	usage   bool
	model   string
	created int64
}

// next returns the job's next event; false when the client has gone.
// Once the server is stopping, a generation that gives nothing within
// Options.StopWait ends the answer with a 503 error.
func (a *answer) next() (event, bool) {
	stopping := a.s.stopping
	var stalled <-chan time.Time
	for {
		select {
		case e := <-a.j.events:
			return e, true
		case <-a.s.done:
			select {
			case e := <-a.j.events:
				return e, true
			default:
				return event{err: a.s.unavailableError(nil)}, true
			}
		case <-a.r.Context().Done():
			return event{}, false
		case <-stopping:
			stopping = nil
			t := time.NewTimer(a.s.o.StopWait)
			defer t.Stop()
			stalled = t.C
		case <-stalled:
			return event{err: unavailable("the server is stopping and the model gave nothing within %v: its group may have lost a rank; retry on another server or later", a.s.o.StopWait)}, true
		}
	}
}

func (a *answer) whole() {
	var text strings.Builder
	for {
		e, ok := a.next()
		if !ok {
			return
		}
		if e.err != nil {
			a.s.reject(a.w, a.r, a.j.id, e.err)
			return
		}
		text.WriteString(e.text)
		if e.finish == "" {
			continue
		}
		t, reason := text.String(), e.finish
		var choice any = completionChoice{Text: t, FinishReason: &reason}
		object := "text_completion"
		if a.chat {
			choice = chatChoice{Message: &chatOut{Role: "assistant", Content: &t}, FinishReason: &reason}
			object = "chat.completion"
		}
		writeJSON(a.w, response{ID: a.j.id, Object: object, Created: a.created, Model: a.model,
			Choices: []any{choice}, Usage: &e.usage})
		return
	}
}

func (a *answer) stream() {
	started := false
	for {
		e, ok := a.next()
		if !ok {
			return
		}
		if e.err != nil {
			if !started {
				a.s.reject(a.w, a.r, a.j.id, e.err)
				return
			}
			a.s.log.Info("request", "id", a.j.id, "path", a.r.URL.Path, "status", e.err.Status, "error", e.err.Message)
			a.send(map[string]*APIError{"error": e.err})
			return
		}
		if !started {
			started = true
			h := a.w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Accel-Buffering", "no")
			a.w.WriteHeader(http.StatusOK)
			if a.chat {
				empty := ""
				a.chunk(&chatOut{Role: "assistant", Content: &empty}, "", nil)
			}
		}
		if e.text != "" {
			text := e.text
			a.chunk(&chatOut{Content: &text}, "", nil)
		}
		if e.finish == "" {
			continue
		}
		a.chunk(&chatOut{}, e.finish, nil)
		if a.usage {
			a.chunk(nil, "", &e.usage)
		}
		fmt.Fprint(a.w, "data: [DONE]\n\n")
		http.NewResponseController(a.w).Flush()
		return
	}
}

// chunk writes one server-sent event: a delta, the finish reason, or (with
// no choices) the usage.
func (a *answer) chunk(delta *chatOut, finish string, u *usage) {
	var reason *string
	if finish != "" {
		reason = &finish
	}
	choices := []any{}
	if u == nil {
		if a.chat {
			choices = append(choices, chatChoice{Delta: delta, FinishReason: reason})
		} else {
			var text string
			if delta.Content != nil {
				text = *delta.Content
			}
			choices = append(choices, completionChoice{Text: text, FinishReason: reason})
		}
	}
	object := "text_completion"
	if a.chat {
		object = "chat.completion.chunk"
	}
	a.send(response{ID: a.j.id, Object: object, Created: a.created, Model: a.model, Choices: choices, Usage: u})
}

func (a *answer) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value sent is built here from strings and numbers.
		panic(errors.Join(errors.New("server: encoding a chunk"), err))
	}
	fmt.Fprintf(a.w, "data: %s\n\n", b)
	http.NewResponseController(a.w).Flush()
}
