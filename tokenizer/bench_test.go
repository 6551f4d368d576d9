package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkEncode measures encode throughput (MB/s, one goroutine) on the
// Kimi (tiktoken) and Llama 3 (tokenizer.json) layouts. By default it
// trains the test vocabularies on the test corpus; bench/tokenize sets
// TOKENIZER_BENCH_DIR to a directory with kimi/, llama3/ and text.txt so
// that Python's tiktoken and tokenizers run on the very same input.
func BenchmarkEncode(b *testing.B) {
	dirs := map[string]string{}
	var text string
	if d := os.Getenv("TOKENIZER_BENCH_DIR"); d != "" {
		raw, err := os.ReadFile(filepath.Join(d, "text.txt"))
		if err != nil {
			b.Fatal(err)
		}
		text = string(raw)
		dirs["kimi"], dirs["llama3"] = filepath.Join(d, "kimi"), filepath.Join(d, "llama3")
	} else {
		texts := corpus(1, 3000, []string{"[BOS]", "<|eot_id|>"})
		exp := referenceB(b, texts, "kimi,llama3")
		for name, e := range exp {
			dirs[name] = e.Dir
		}
		// The pathological long pieces of the corpus test are left out:
		// this measures ordinary text.
		var keep []string
		for _, s := range texts {
			if len(s) < 1000 {
				keep = append(keep, s)
			}
		}
		text = strings.Join(keep, "\n")
	}
	for _, name := range []string{"kimi", "llama3"} {
		tok, err := Load(dirs[name])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				tok.EncodePlain(text)
			}
		})
	}
}
