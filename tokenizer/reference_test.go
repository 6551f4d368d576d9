package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

// expected is what testdata/reference.py records for one model directory.
type expected struct {
	Dir    string  `json:"dir"`
	Encode [][]int `json:"encode"`
	// EncodeTransformers is transformers' encode(text), what mlx-lm calls,
	// for the first 500 strings of the tokenizer.json layouts.
	EncodeTransformers [][]int  `json:"encode_transformers"`
	Plain              [][]int  `json:"plain"`
	Decode             []string `json:"decode"`
	EOS                []int    `json:"eos"`
	BOS                int      `json:"bos"`
	VocabSize          int      `json:"vocab_size"`
}

// reference writes the corpus, runs testdata/reference.py on it (the given
// configurations, or all) and returns what it recorded, by configuration.
func reference(t *testing.T, texts []string, configs string) map[string]expected {
	t.Helper()
	return referenceB(t, texts, configs)
}

func referenceB(t testing.TB, texts []string, configs string) map[string]expected {
	t.Helper()
	dir := t.TempDir()
	// TOKENIZER_REFERENCE_DIR keeps the model directories for a look after a failure.
	if d := os.Getenv("TOKENIZER_REFERENCE_DIR"); d != "" {
		dir = d
	}
	b, err := json.Marshal(texts)
	require.NoError(t, err)
	in := filepath.Join(dir, "corpus.json")
	require.NoError(t, os.WriteFile(in, b, 0o644))
	script, err := filepath.Abs("testdata/reference.py")
	require.NoError(t, err)
	args := []string{script, in, dir}
	if configs != "" {
		args = append(args, configs)
	}
	testenv.RunPython(t, "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')", args...)
	out, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	require.NoError(t, err)
	var exp map[string]expected
	require.NoError(t, json.Unmarshal(out, &exp))
	return exp
}

func TestEncodeMatchesReferenceOnCorpus(t *testing.T) {
	specials := []string{"<|endoftext|>", "<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>", "<|im_start|>",
		"<|im_end|>", "<｜User｜>", "<｜Assistant｜>", "[BOS]", "[EOS]", "<|im_middle|>", "<tool_call>",
		"<mask>", "<lstrip>", "<rstrip>", "word", " word ", "<|reserved_token_9999|>"}
	// TOKENIZER_CORPUS sets the corpus size and seed for a long run (see
	// the package doc); the default is a few seconds' worth.
	n, seed := 3000, uint64(1)
	if v := os.Getenv("TOKENIZER_CORPUS"); v != "" {
		_, err := fmt.Sscanf(v, "%d,%d", &n, &seed)
		require.NoError(t, err, "TOKENIZER_CORPUS=SIZE,SEED")
	}
	texts := corpus(seed, n, specials)
	exp := reference(t, texts, "")
	require.NotEmpty(t, exp)
	for name, e := range exp {
		t.Run(name, func(t *testing.T) {
			tok, err := Load(e.Dir)
			require.NoError(t, err)
			assert.Equal(t, e.VocabSize, tok.VocabSize(), "vocabulary size")
			assert.Equal(t, e.EOS, tok.EOS(), "EOS ids")
			bos, ok := tok.BOS()
			assert.Equal(t, e.BOS >= 0, ok, "has a BOS")
			if ok {
				assert.Equal(t, e.BOS, bos, "BOS id")
			}
			if name != "kimi" {
				require.Len(t, e.EncodeTransformers, min(500, len(texts)), "transformers' ids for the first strings")
			}
			bad, held, specialIDs := 0, 0, 0
			for i, s := range texts {
				// Streaming gives whole characters and adds up to Decode.
				d := tok.NewStreamDecoder()
				var streamed strings.Builder
				for _, id := range e.Encode[i] {
					out := d.Add(id)
					if out == "" {
						held++
					}
					require.True(t, utf8.ValidString(out), "stream of %q returned %q", s, out)
					streamed.WriteString(out)
				}
				streamed.WriteString(d.Flush())
				assert.Equal(t, e.Decode[i], streamed.String(), "streamed decode of %q", s)
				if roundTrips[name] && utf8.ValidString(s) {
					assert.Equal(t, s, tok.Decode(tok.EncodePlain(s)), "Decode(EncodePlain(%q))", s)
				}
				got := tok.Encode(s)
				if !assert.Equal(t, e.Encode[i], nonNil(got), "Encode(%q)", s) {
					bad++
				}
				if i < len(e.EncodeTransformers) && !assert.Equal(t, e.EncodeTransformers[i], nonNil(got), "Encode(%q) beside transformers", s) {
					bad++
				}
				if !assert.Equal(t, e.Plain[i], nonNil(tok.EncodePlain(s)), "EncodePlain(%q)", s) {
					bad++
				}
				if !assert.Equal(t, e.Decode[i], tok.Decode(e.Encode[i]), "Decode(Encode(%q))", s) {
					bad++
				}
				for _, id := range e.Encode[i] {
					if tok.IsSpecial(id) {
						specialIDs++
					}
				}
				if bad > 10 {
					t.Fatal("too many differences")
				}
			}
			assert.Positive(t, specialIDs, "no special token in the text became its id")
			assert.Positive(t, held, "no id left a character unfinished: the corpus misses multi-token characters")
		})
	}
}

// roundTrips are the configurations whose decode gives the text back: all
// but those that add a prefix space only sometimes and strip it always.
var roundTrips = map[string]bool{"gpt2": true, "llama3": true, "o200k": true, "deepseek": true,
	"kimi-hf": true, "kimi": true, "flags": true, "spm-legacy": true}

func nonNil(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}
