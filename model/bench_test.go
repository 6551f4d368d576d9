package model

import (
	"context"
	"testing"
)

// BenchmarkGenerate measures a whole generation (prefill of 64 tokens, 32
// decoded) of the small float32 checkpoints, and reports the tokens per
// second the Stats give.
func BenchmarkGenerate(b *testing.B) {
	for _, spec := range []string{"llama", "kimi"} {
		b.Run(spec, func(b *testing.B) {
			m := loadSpec(b, spec)
			prompt := prompts(m.Config.VocabSize)[3][:64]
			var st Stats
			for b.Loop() {
				gen := m.Generate(context.Background(), prompt, GenerateOptions{MaxTokens: 32, Stop: []int{}})
				for _, err := range gen.Tokens() {
					if err != nil {
						b.Fatal(err)
					}
				}
				st = gen.Stats()
			}
			b.ReportMetric(st.PromptTPS, "prompt-tok/s")
			b.ReportMetric(st.GenerationTPS, "gen-tok/s")
		})
	}
}
