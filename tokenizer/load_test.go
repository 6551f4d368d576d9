package tokenizer

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFiles writes name → content into a fresh directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

// byteRanks is a tiktoken.model ranking the 256 bytes, then extra.
func byteRanks(extra ...string) string {
	var b strings.Builder
	for i := 0; i < 256; i++ {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte{byte(i)}), i)
	}
	for i, e := range extra {
		fmt.Fprintf(&b, "%s %d\n", base64.StdEncoding.EncodeToString([]byte(e)), 256+i)
	}
	return b.String()
}

const kimiConfig = `{"tokenizer_class": "TikTokenTokenizer", "bos_token": "[BOS]", "eos_token": "[EOS]",
 "added_tokens_decoder": {"258": {"content": "[BOS]", "special": true}, "259": {"content": "[EOS]", "special": true},
 "260": {"content": "<|im_end|>", "special": true}}}`

// hfJSON is a byte-level tokenizer.json whose pre-tokenizer, normalizer and
// model type are given.
func hfJSON(pre, normalizer, model string) string {
	var vocab []string
	for b := 0; b < 256; b++ {
		vocab = append(vocab, fmt.Sprintf("%q: %d", string(byteToChar[b]), b))
	}
	return fmt.Sprintf(`{"version": "1.0", "added_tokens": [], "normalizer": %s, "pre_tokenizer": %s,
 "post_processor": null, "decoder": {"type": "ByteLevel"},
 "model": {"type": %q, "vocab": {%s}, "merges": []}}`, normalizer, pre, model, strings.Join(vocab, ", "))
}

const byteLevelPre = `{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`

func TestLoadReadsKimiLayout(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"tiktoken.model":         byteRanks("ab", "abc"),
		"tokenizer_config.json":  kimiConfig,
		"config.json":            `{"vocab_size": 262, "eos_token_id": 259}`,
		"generation_config.json": `{"eos_token_id": [259, 260]}`,
	})
	tok, err := Load(dir)
	require.NoError(t, err)
	assert.Equal(t, 262, tok.VocabSize(), "the reserved block runs to config.json's vocab_size")
	assert.Equal(t, []int{259, 260}, tok.EOS(), "eos_token and both configs' eos_token_id, once each")
	bos, ok := tok.BOS()
	assert.True(t, ok)
	assert.Equal(t, 258, bos)
	assert.False(t, tok.AddsBOS(), "Kimi's tokenizer adds no BOS")
	id, ok := tok.TokenID("<|reserved_token_261|>")
	assert.True(t, ok, "an unnamed special id is a reserved token named by its id")
	assert.Equal(t, 261, id)
	assert.Equal(t, []int{257, 258, 257, 260}, tok.Encode("abc[BOS]abc<|im_end|>"))
	assert.Equal(t, "abc[BOS]abc<|im_end|>", tok.Decode(tok.EncodePlain("abc[BOS]abc<|im_end|>")))
	assert.NotContains(t, tok.EncodePlain("abc[BOS]"), 258, "plain text keeps special tokens as text")
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		is    error
		want  string
	}{
		{"a directory with no tokenizer", map[string]string{"config.json": "{}"}, fs.ErrNotExist, "neither tokenizer.json nor tiktoken.model"},
		{"a tiktoken.model line without a rank", map[string]string{"tiktoken.model": "YQ==\n", "tokenizer_config.json": kimiConfig}, ErrFormat, "line 1"},
		{"a tiktoken.model that ranks a byte twice", map[string]string{"tiktoken.model": byteRanks() + "YQ== 256\n", "tokenizer_config.json": kimiConfig}, ErrFormat, "listed twice"},
		{"a tiktoken.model missing a byte", map[string]string{"tiktoken.model": strings.SplitN(byteRanks(), "\n", 2)[1], "tokenizer_config.json": kimiConfig}, ErrFormat, "ranks are not"},
		{"a tiktoken.model without the TikTokenTokenizer class", map[string]string{"tiktoken.model": byteRanks(), "tokenizer_config.json": `{}`}, ErrUnsupported, "TikTokenTokenizer"},
		{"a vocab_size below the base ranks", map[string]string{"tiktoken.model": byteRanks(), "tokenizer_config.json": kimiConfig, "config.json": `{"vocab_size": 100}`}, ErrFormat, "vocab_size 100"},
		{"a special id outside the reserved block", map[string]string{"tiktoken.model": byteRanks(), "config.json": `{"vocab_size": 258}`, "tokenizer_config.json": kimiConfig}, ErrFormat, "outside the special block"},
		{"malformed tokenizer_config.json", map[string]string{"tokenizer.json": hfJSON(byteLevelPre, "null", "BPE"), "tokenizer_config.json": "{"}, ErrFormat, "tokenizer_config.json"},
		{"a pre-tokenizer pattern no scanner implements", map[string]string{"tokenizer.json": hfJSON(`{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}`, "null", "BPE")}, ErrUnsupported, `pattern "\\w+"`},
		{"a normalizer", map[string]string{"tokenizer.json": hfJSON(byteLevelPre, `{"type": "NFKC"}`, "BPE")}, ErrUnsupported, `normalizer "NFKC"`},
		{"a model that is not BPE", map[string]string{"tokenizer.json": hfJSON(byteLevelPre, "null", "WordPiece")}, ErrUnsupported, `model type "WordPiece"`},
		{"a tokenizer that is not byte-level", map[string]string{"tokenizer.json": hfJSON(`{"type": "Whitespace"}`, "null", "BPE")}, ErrUnsupported, `pre-tokenizer "Whitespace"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFiles(t, tt.files))
			require.Error(t, err)
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}
