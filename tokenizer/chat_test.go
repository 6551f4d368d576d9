package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

type chatCase struct {
	Name                string    `json:"-"`
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
}

var chatCases = []chatCase{
	{"a user message alone asks for an answer", []Message{{"user", "Hello!"}}, true},
	{"a user message alone without a generation prompt", []Message{{"user", "Hello!"}}, false},
	{"a system prompt comes before the user", []Message{{"system", "You are terse."}, {"user", "2+2?"}}, true},
	{"a multi-turn conversation keeps every turn", []Message{
		{"system", "Answer in Korean."}, {"user", "Hi"}, {"assistant", "안녕하세요!"}, {"user", "How are you?"}}, true},
	{"a conversation ending on the assistant has no prompt", []Message{
		{"user", "Hi"}, {"assistant", "Hello."}}, false},
	{"content with surrounding whitespace and newlines", []Message{
		{"system", "  padded system \n"}, {"user", "\n line one\nline two  \t"}, {"assistant", " x "}, {"user", "\u3000wide\u3000"}}, true},
	{"two system messages", []Message{{"system", "first"}, {"system", "second"}, {"user", "q"}}, true},
	{"special tokens written in content stay text", []Message{{"user", "<|im_end|> and <|eot_id|> and <｜User｜>"}}, true},
	{"an empty user message", []Message{{"user", ""}}, true},
	{"a past answer with its thinking", []Message{
		{"user", "Q1"}, {"assistant", "<think>\nfirst, think\n</think>\n\nA1"}, {"user", "Q2"}}, true},
	{"the last answer keeps its thinking", []Message{
		{"system", "S"}, {"user", "Q"}, {"assistant", "<think>r1\n\n</think>\n\nA"}}, false},
	{"an answer with no thinking after the last query", []Message{{"user", "Q"}, {"assistant", "plain"}}, false},
}

func TestApplyChatTemplateMatchesTransformers(t *testing.T) {
	dir := t.TempDir()
	b, err := json.Marshal(chatCases)
	require.NoError(t, err)
	in := filepath.Join(dir, "cases.json")
	require.NoError(t, os.WriteFile(in, b, 0o644))
	script, err := filepath.Abs("testdata/chat_reference.py")
	require.NoError(t, err)
	fixtures, err := filepath.Abs("testdata/chat")
	require.NoError(t, err)
	testenv.RunPython(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
		script, fixtures, filepath.Join(dir, "out"), in)
	raw, err := os.ReadFile(filepath.Join(dir, "out", "expected.json"))
	require.NoError(t, err)
	var exp map[string]struct {
		Dir      string    `json:"dir"`
		Rendered []*string `json:"rendered"`
		IDs      [][]int   `json:"ids"`
	}
	require.NoError(t, json.Unmarshal(raw, &exp))
	families := map[string]string{
		"chatml": "chatml", "smollm2": "chatml", "qwen2.5": "chatml", "llama3": "llama3",
		"llama3.1": "llama3.1", "llama3.2": "llama3.1", "deepseek-v3": "deepseek-v3",
		"kimi-k2": "kimi-k2", "kimi-k2.5": "kimi-k2.5", "qwen3": "qwen3",
	}
	require.Len(t, exp, len(families), "one reference per fixture")
	for name, e := range exp {
		t.Run(name, func(t *testing.T) {
			tok, err := Load(e.Dir)
			require.NoError(t, err)
			require.True(t, tok.HasChatTemplate())
			fam, err := tok.ChatFamily()
			require.NoError(t, err)
			assert.Equal(t, families[name], fam)
			for i, c := range chatCases {
				got, err := tok.ApplyChatTemplate(c.Messages, c.AddGenerationPrompt)
				if e.Rendered[i] == nil {
					assert.Error(t, err, c.Name)
					continue
				}
				require.NoError(t, err, c.Name)
				assert.Equal(t, *e.Rendered[i], got, c.Name)
				assert.Equal(t, e.IDs[i], nonNil(tok.EncodePrompt(got)), "%s: ids", c.Name)
			}
		})
	}
}

func TestApplyChatTemplateRefuses(t *testing.T) {
	base := &Tokenizer{bosToken: "<s>"}
	tests := []struct {
		name     string
		template string
		msgs     []Message
	}{
		{"a model without a template", "", []Message{{"user", "hi"}}},
		{"a template of no known family", "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}", []Message{{"user", "hi"}}},
		{"a ChatML template with another thinking form", "<|im_start|>{{ x }}<|im_end|><think>", []Message{{"user", "hi"}}},
		{"a DeepSeek template with thinking", "<｜User｜><｜Assistant｜></think>", []Message{{"user", "hi"}}},
		{"a tool message to Llama 3", "<|start_header_id|><|end_header_id|><|eot_id|>", []Message{{"tool", "{}"}}},
		{"a tool message to Kimi", "<|im_user|><|im_assistant|><|im_system|>system<|im_middle|>Be kind.<|im_end|>", []Message{{"tool", "{}"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := *base
			tok.chatTemplate = tt.template
			_, err := tok.ApplyChatTemplate(tt.msgs, true)
			require.ErrorIs(t, err, ErrUnknownTemplate)
			assert.Contains(t, err.Error(), "--raw")
		})
	}
}
