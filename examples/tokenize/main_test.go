package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

// referenceDirs trains the tokenizer package's reference vocabularies on
// texts and returns the model directories by name, with what the reference
// libraries encode texts to.
func referenceDirs(t *testing.T, texts []string, configs string) map[string]struct {
	Dir    string   `json:"dir"`
	Encode [][]int  `json:"encode"`
	Decode []string `json:"decode"`
} {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(texts)
	require.NoError(t, err)
	in := filepath.Join(dir, "corpus.json")
	require.NoError(t, os.WriteFile(in, b, 0o644))
	script, err := filepath.Abs("../../tokenizer/testdata/reference.py")
	require.NoError(t, err)
	testenv.RunPython(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
		script, in, dir, configs)
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	require.NoError(t, err)
	var exp map[string]struct {
		Dir    string   `json:"dir"`
		Encode [][]int  `json:"encode"`
		Decode []string `json:"decode"`
	}
	require.NoError(t, json.Unmarshal(raw, &exp))
	return exp
}

func runTool(t *testing.T, bin string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestTokenizeEncodesDecodesAndRendersAsTheReference(t *testing.T) {
	bin := testenv.GoBuild(t, ".")
	texts := []string{"Hello, world!", "안녕하세요, 세계!", "<|begin_of_text|>x<|eot_id|>", "[BOS]中文 and 日本語[EOS]", ""}
	refs := referenceDirs(t, append(texts, strings.Repeat("the quick brown fox ", 50)), "kimi,llama3")
	require.Len(t, refs, 2)
	for name, ref := range refs {
		t.Run(name, func(t *testing.T) {
			in, err := json.Marshal(texts)
			require.NoError(t, err)
			out, stderr, code := runTool(t, bin, string(in), "--model", ref.Dir)
			require.Zero(t, code, stderr)
			var ids [][]int
			require.NoError(t, json.Unmarshal([]byte(out), &ids))
			assert.Equal(t, ref.Encode[:len(texts)], ids)

			out, stderr, code = runTool(t, bin, out, "--model", ref.Dir, "--decode")
			require.Zero(t, code, stderr)
			var back []string
			require.NoError(t, json.Unmarshal([]byte(out), &back))
			assert.Equal(t, ref.Decode[:len(texts)], back)
		})
	}

	t.Run("chat", func(t *testing.T) {
		// The llama3 directory with Llama 3.1's template, rendered and
		// encoded by transformers as the reference.
		dir := refs["llama3"].Dir
		cfg, err := os.ReadFile("../../tokenizer/testdata/chat/llama3.1/tokenizer_config.json")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644))
		msgs := `[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi <|eot_id|> there"}]`
		want := testenv.RunPython(t, `
import json, sys
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
msgs = json.loads(sys.argv[2])
prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
print(json.dumps({"prompt": prompt, "ids": tok.encode(prompt, add_special_tokens=False)}))
`, dir, msgs)
		out, stderr, code := runTool(t, bin, msgs, "--model", dir, "--chat")
		require.Zero(t, code, stderr)
		assert.JSONEq(t, string(want), out)
	})
}

func TestTokenizeFailsWithOneLine(t *testing.T) {
	bin := testenv.GoBuild(t, ".")
	empty := t.TempDir()
	// A Kimi-layout directory of single bytes, with a template of no
	// known family.
	bytesOnly := t.TempDir()
	var model strings.Builder
	for b := 0; b < 256; b++ {
		fmt.Fprintf(&model, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(b)}), b)
	}
	require.NoError(t, os.WriteFile(filepath.Join(bytesOnly, "tiktoken.model"), []byte(model.String()), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(bytesOnly, "tokenizer_config.json"),
		[]byte(`{"tokenizer_class": "TikTokenTokenizer", "chat_template": "{{ messages[0].content }}"}`), 0o644))
	tests := []struct {
		name, stdin, want string
		args              []string
	}{
		{"a directory without a tokenizer", `["x"]`, "neither tokenizer.json nor tiktoken.model", []string{"--model", empty}},
		{"input that is not a JSON array of strings", `{"x": 1}`, "not a JSON array of strings", []string{"--model", bytesOnly}},
		{"ids that are not a JSON array of arrays", `[1, 2]`, "not a JSON array of id arrays", []string{"--model", bytesOnly, "--decode"}},
		{"a chat template of no known family", `[{"role": "user", "content": "hi"}]`, "--raw", []string{"--model", bytesOnly, "--chat"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := runTool(t, bin, tt.stdin, tt.args...)
			assert.Equal(t, 1, code)
			msg := strings.TrimRight(stderr, "\n")
			assert.NotContains(t, msg, "\n")
			assert.True(t, strings.HasPrefix(msg, "tokenize: "), msg)
			assert.Contains(t, msg, tt.want)
		})
	}
	_, _, code := runTool(t, bin, "", "--decode", "--chat")
	assert.Equal(t, 2, code, "a usage error")
}
