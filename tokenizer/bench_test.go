package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	docs := chunks(text, 4096)
	for _, name := range []string{"kimi", "llama3"} {
		tok, err := Load(dirs[name])
		if err != nil {
			b.Fatal(err)
		}
		// The whole text in one call, then as documents of about 4 KB (a
		// prompt's size), one call each.
		b.Run(name+"/whole", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			c := cpuTime()
			for b.Loop() {
				tok.EncodePlain(text)
			}
			reportCPU(b, len(text), cpuTime()-c)
		})
		b.Run(name+"/4KB", func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			c := cpuTime()
			for b.Loop() {
				for _, d := range docs {
					tok.EncodePlain(d)
				}
			}
			reportCPU(b, len(text), cpuTime()-c)
		})
	}
}

// reportCPU adds throughput by CPU time, cpu-MB/s, beside the wall-clock
// MB/s.
func reportCPU(b *testing.B, n int, cpu time.Duration) {
	if cpu > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
	}
}

// chunks cuts text after the first line end at or past size bytes, as
// bench/tokenize/bench.py does.
func chunks(text string, size int) []string {
	var out []string
	start := 0
	for i := 0; i < len(text); i++ {
		if text[i] == '\n' && i+1-start >= size {
			out = append(out, text[start:i+1])
			start = i + 1
		}
	}
	if start < len(text) {
		out = append(out, text[start:])
	}
	return out
}
