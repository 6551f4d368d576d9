package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlxdist/mlxdist/model"
)

// APIError is an error as the OpenAI API returns it: an HTTP status and a
// JSON body {"error": {"message", "type", "param", "code"}}.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.Status, e.Type, e.Message)
}

// ErrUnavailable is matched by the APIError a request gets when the group
// has failed or the server is shutting down.
var ErrUnavailable = errors.New("server: unavailable")

// Is makes errors.Is(err, ErrUnavailable) true for a 503.
func (e *APIError) Is(target error) bool {
	return target == ErrUnavailable && e.Status == http.StatusServiceUnavailable
}

func invalid(param, format string, args ...any) *APIError {
	return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param,
		Message: fmt.Sprintf(format, args...)}
}

func unavailable(format string, args ...any) *APIError {
	return &APIError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "unavailable",
		Message: fmt.Sprintf(format, args...)}
}

func writeError(w http.ResponseWriter, e *APIError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	json.NewEncoder(w).Encode(map[string]*APIError{"error": e})
}

// decodeError turns a request body's decoding error into the API's words.
func decodeError(err error) *APIError {
	var maxErr *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &maxErr):
		return &APIError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
			Message: fmt.Sprintf("request body is larger than %d bytes: send a shorter prompt", maxErr.Limit)}
	case errors.As(err, &typeErr):
		// The path names the embedded params struct: the API knows no such level.
		field := strings.TrimPrefix(typeErr.Field, "params.")
		return invalid(field, "invalid type for %q: expected %s, got a JSON %s", field, typeErr.Type, typeErr.Value)
	case errors.As(err, &syntaxErr):
		return invalid("", "request body is not valid JSON (at byte %d): %v", syntaxErr.Offset, syntaxErr)
	}
	return invalid("", "request body could not be read as JSON: %v", err)
}

// params are the generation settings both endpoints take.
type params struct {
	Model               string          `json:"model"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int            `json:"top_k"`
	MinP                *float64        `json:"min_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`

	// mlx-lm's logits processors (its server's names and defaults).
	PresencePenalty       *float64           `json:"presence_penalty"`
	PresenceContextSize   *int               `json:"presence_context_size"`
	FrequencyPenalty      *float64           `json:"frequency_penalty"`
	FrequencyContextSize  *int               `json:"frequency_context_size"`
	RepetitionPenalty     *float64           `json:"repetition_penalty"`
	RepetitionContextSize *int               `json:"repetition_context_size"`
	LogitBias             map[string]float64 `json:"logit_bias"`

	// Settings this server does not have: their neutral values are
	// accepted (clients send them by default), any other is refused
	// rather than silently ignored.
	Logprobs    json.RawMessage   `json:"logprobs"`
	TopLogprobs *int              `json:"top_logprobs"`
	Echo        *bool             `json:"echo"`
	BestOf      *int              `json:"best_of"`
	Suffix      *string           `json:"suffix"`
	Tools       []json.RawMessage `json:"tools"`
}

// penalties reads mlx-lm's logits processors' settings, checked as its
// server checks them, with token ids inside the vocabulary.
func (p *params) penalties(vocab int) (model.Penalties, *APIError) {
	var out model.Penalties
	for _, f := range []struct {
		name, ctxName string
		v             *float64
		n             *int
		dst           *float64
		ctx           *int
	}{
		{"repetition_penalty", "repetition_context_size", p.RepetitionPenalty, p.RepetitionContextSize, &out.Repetition, &out.RepetitionContext},
		{"presence_penalty", "presence_context_size", p.PresencePenalty, p.PresenceContextSize, &out.Presence, &out.PresenceContext},
		{"frequency_penalty", "frequency_context_size", p.FrequencyPenalty, p.FrequencyContextSize, &out.Frequency, &out.FrequencyContext},
	} {
		if f.v != nil {
			*f.dst = *f.v
		}
		if f.n != nil {
			if *f.n <= 0 {
				return out, invalid(f.ctxName, "%s is %d: give a positive number of tokens", f.ctxName, *f.n)
			}
			*f.ctx = *f.n
		}
	}
	if out.Repetition < 0 {
		return out, invalid("repetition_penalty", "repetition_penalty %v is negative: 0 turns it off", out.Repetition)
	}
	if len(p.LogitBias) > 0 {
		out.LogitBias = make(map[int]float64, len(p.LogitBias))
		for k, v := range p.LogitBias {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 || id >= vocab {
				return out, invalid("logit_bias", "logit_bias key %q is not a token id in 0..%d", k, vocab-1)
			}
			out.LogitBias[id] = v
		}
	}
	return out, nil
}

// unsupported refuses a setting this server does not have, unless it has
// its neutral value.
func (p *params) unsupported() *APIError {
	refuse := func(param string, v any, neutral string) *APIError {
		return &APIError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: "unsupported_parameter",
			Message: fmt.Sprintf("%s %v is not supported by this server: leave it out or send %s", param, v, neutral)}
	}
	switch {
	case p.TopLogprobs != nil && *p.TopLogprobs != 0:
		return refuse("top_logprobs", *p.TopLogprobs, "0")
	case p.Echo != nil && *p.Echo:
		return refuse("echo", true, "false")
	case p.BestOf != nil && *p.BestOf != 1:
		return refuse("best_of", *p.BestOf, "1")
	case p.Suffix != nil && *p.Suffix != "":
		return refuse("suffix", strconv.Quote(*p.Suffix), `""`)
	case len(p.Tools) > 0:
		return refuse("tools", "with entries", "[]: the chat templates rendered here take no tool definitions")
	}
	// logprobs is a boolean for a chat and a count for a completion.
	switch v := strings.TrimSpace(string(p.Logprobs)); v {
	case "", "null", "false", "0":
	default:
		return refuse("logprobs", v, "false (chat) or 0 (completions)")
	}
	return nil
}

type chatRequest struct {
	params
	Messages []chatMessage `json:"messages"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type completionRequest struct {
	params
	Prompt json.RawMessage `json:"prompt"`
}

// text reads a message's content: a string, or a list of parts of which
// only text parts are taken.
func (m chatMessage) text(i int) (string, *APIError) {
	param := fmt.Sprintf("messages[%d].content", i)
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", invalid(param, "%s must be a string or a list of text parts", param)
	}
	var b strings.Builder
	for j, p := range parts {
		if p.Type != "text" {
			return "", invalid(param, "%s[%d] is of type %q: this server takes text parts only", param, j, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// stops reads "stop": a string or a list of at most 4 strings.
func (p *params) stops() ([]string, *APIError) {
	if len(p.Stop) == 0 || string(p.Stop) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(p.Stop, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(p.Stop, &list); err != nil {
		return nil, invalid("stop", "stop must be a string or a list of strings")
	}
	if len(list) > 4 {
		return nil, invalid("stop", "stop has %d sequences: give at most 4", len(list))
	}
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatChoice struct {
	Index        int      `json:"index"`
	Message      *chatOut `json:"message,omitempty"`
	Delta        *chatOut `json:"delta,omitempty"`
	FinishReason *string  `json:"finish_reason"`
	Logprobs     *any     `json:"logprobs"`
}

type chatOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type completionChoice struct {
	Index        int     `json:"index"`
	Text         string  `json:"text"`
	FinishReason *string `json:"finish_reason"`
	Logprobs     *any    `json:"logprobs"`
}

// response is a completion, a chat completion or one of their chunks.
type response struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices any    `json:"choices"`
	Usage   *usage `json:"usage,omitempty"`
}
