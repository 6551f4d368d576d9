package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/tokenizer"
)

// inference is the seed's second table: the answer to the prompt and how
// fast it came.
type inference struct {
	Prompt        string  `json:"prompt"`
	PromptIDs     []int   `json:"prompt_ids"`
	GeneratedIDs  []int   `json:"generated_ids"`
	Response      string  `json:"response"`
	PromptTokens  int     `json:"prompt_tokens"`
	Generated     int     `json:"tokens_generated"`
	PromptTPS     float64 `json:"prompt_tps"`
	GenerationTPS float64 `json:"generation_tps"`
	TTFTS         float64 `json:"time_to_first_token_s"`
	TotalS        float64 `json:"total_inference_s"`
	PeakMemory    int64   `json:"peak_memory"`
	StopReason    string  `json:"stop_reason"`
}

// answer builds the model from the arrays this rank loaded (taking them
// over) and generates an answer to the prompt on every rank in lockstep,
// greedily, with the model's chat template, as mlx_lm generate does. Every
// rank returns the same figures; rank 0 prints them.
func answer(ctx context.Context, o *options, g *jaccl.Group, arrays map[string]*mlx.Array) (*inference, error) {
	cfg, err := model.ReadConfig(o.model)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(o.model)
	if err != nil {
		return nil, fmt.Errorf("--prompt needs the model's tokenizer: %w", err)
	}
	ids, err := tok.PromptIDs(o.prompt, o.raw)
	if err != nil {
		return nil, err
	}
	m, err := model.FromLoaded(cfg, arrays, g)
	if err != nil {
		return nil, err
	}
	defer m.Free()
	start := time.Now()
	gen := m.Generate(ctx, ids, model.GenerateOptions{MaxTokens: o.maxTokens, Stop: tok.EOS()})
	var got []int
	for t, err := range gen.Tokens() {
		if err != nil {
			return nil, err
		}
		got = append(got, t.ID)
	}
	st := gen.Stats()
	return &inference{
		Prompt: o.prompt, PromptIDs: ids, GeneratedIDs: got, Response: tok.Decode(got),
		PromptTokens: st.PromptTokens, Generated: st.GeneratedTokens,
		PromptTPS: st.PromptTPS, GenerationTPS: st.GenerationTPS, TTFTS: st.TimeToFirstToken.Seconds(),
		TotalS: time.Since(start).Seconds(), PeakMemory: st.PeakMemory, StopReason: st.StopReason,
	}, nil
}

// writeInference prints the seed's inference table.
func writeInference(w io.Writer, in *inference) error {
	fmt.Fprintf(w, "\nInference results\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "prompt\t%q (%d tokens)\n", in.Prompt, in.PromptTokens)
	fmt.Fprintf(tw, "prompt TPS\t%.2f tokens/s\n", in.PromptTPS)
	fmt.Fprintf(tw, "generation TPS\t%.2f tokens/s\n", in.GenerationTPS)
	fmt.Fprintf(tw, "tokens generated\t%d (%s)\n", in.Generated, in.StopReason)
	fmt.Fprintf(tw, "time to first token\t%.3f s\n", in.TTFTS)
	fmt.Fprintf(tw, "total inference time\t%.2f s\n", in.TotalS)
	fmt.Fprintf(tw, "peak memory (MLX)\t%s\n", units.FormatGB(in.PeakMemory))
	fmt.Fprintf(tw, "response\t%s\n", strings.ReplaceAll(strings.TrimSpace(in.Response), "\n", " ⏎ "))
	fmt.Fprintf(tw, "generated ids\t%v\n", in.GeneratedIDs)
	return tw.Flush()
}

// writeInferenceJSON prints the inference figures as one JSON line.
func writeInferenceJSON(w io.Writer, in *inference) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s%s\n", inferenceMarker, b)
	return err
}
