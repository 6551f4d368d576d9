package ckptgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

// loadScript loads a checkpoint with mlx-lm exactly as a user would (no
// remote code, hub offline), runs the prompt through it and reports what it
// found.
const loadScript = `
import json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten
from mlx_lm.utils import load
from transformers import AutoTokenizer

path, prompt, last = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, tok = load(path)
ids = tok.encode(prompt)
logits = model(mx.array([ids]))
mx.eval(logits)
hf = AutoTokenizer.from_pretrained(path)
quantized = sorted({type(m).__name__ for _, m in model.named_modules() if hasattr(m, "bits")})
names = [k for k, _ in tree_flatten(model.parameters())]
print(json.dumps({
    "model_type": model.model_type,
    "ids": ids,
    "decoded": tok.decode(ids),
    "last_decoded": tok.decode([last]),
    "hf_ids": hf.encode(prompt, add_special_tokens=False),
    "eos": tok.eos_token_id,
    "shape": list(logits.shape),
    "finite": bool(mx.all(mx.isfinite(logits)).item()),
    "std": float(logits.astype(mx.float32).std().item()),
    "quantized_classes": quantized,
    "vision_params": sum(1 for n in names if "vision" in n or "mm_projector" in n),
    "params": len(names),
}))
`

type loadReport struct {
	ModelType        string   `json:"model_type"`
	IDs              []int    `json:"ids"`
	Decoded          string   `json:"decoded"`
	LastDecoded      string   `json:"last_decoded"`
	HFIDs            []int    `json:"hf_ids"`
	EOS              int      `json:"eos"`
	Shape            []int    `json:"shape"`
	Finite           bool     `json:"finite"`
	Std              float64  `json:"std"`
	QuantizedClasses []string `json:"quantized_classes"`
	VisionParams     int      `json:"vision_params"`
	Params           int      `json:"params"`
}

func TestMLXLMLoadsGeneratedCheckpoints(t *testing.T) {
	testenv.Python(t)
	const prompt = "What is 2+2? Answer in one sentence."
	for _, tc := range []struct {
		name      string
		spec      Spec
		modelType string
		classes   []string
	}{
		{"a small Kimi K2.5 loads and runs in mlx-lm", smallKimi(), "kimi_k25",
			[]string{"QuantizedEmbedding", "QuantizedLinear", "QuantizedMultiLinear", "QuantizedSwitchLinear"}},
		{"a small Llama loads and runs in mlx-lm", smallLlama(), "llama",
			[]string{"QuantizedEmbedding", "QuantizedLinear"}},
		{"a float32 Qwen2 with tied embeddings loads and runs in mlx-lm", floatQwen(Qwen2Type), "qwen2", []string{}},
		{"a float32 Qwen3 loads and runs in mlx-lm", floatQwen(Qwen3Type), "qwen3", []string{}},
		{"a Kimi K2.5 with mixed quantization and grouped routing loads and runs in mlx-lm", mixedKimi(), "kimi_k25",
			[]string{"QuantizedEmbedding", "QuantizedLinear", "QuantizedMultiLinear", "QuantizedSwitchLinear"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tc.spec, &Options{Seed: 3})
			out := testenv.RunPython(t, loadScript, dir, prompt, strconv.Itoa(tc.spec.Vocab-1))
			var r loadReport
			require.NoError(t, json.Unmarshal(out, &r), "%s", out)
			assert.Equal(t, tc.modelType, r.ModelType)
			assert.Equal(t, []int{1, len(prompt), tc.spec.Vocab}, r.Shape, "one logit row per byte token")
			assert.True(t, r.Finite, "logits are finite")
			assert.Greater(t, r.Std, 0.0, "logits vary")
			assert.Equal(t, tc.classes, r.QuantizedClasses)
			assert.Zero(t, r.VisionParams, "mlx-lm drops the vision tower")
			assert.Equal(t, prompt, r.Decoded)
			assert.Equal(t, fmt.Sprintf("<|t%d|>", tc.spec.Vocab-1), r.LastDecoded, "the tokenizer covers the whole vocabulary")
			assert.Equal(t, r.IDs, r.HFIDs, "transformers and mlx-lm tokenize alike")
			assert.Equal(t, eosTokenID, r.EOS)
		})
	}
}

// floatQwen is a small float32 Qwen-family model with tied embeddings.
func floatQwen(modelType string) Spec {
	return Spec{ModelType: modelType, Vocab: 1024, Hidden: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32,
		Intermediate: 256, Dtype: "F32", Files: 1, TieEmbeddings: true}
}

// mixedKimi is smallKimi with group-limited routing, a router-adjacent
// module at 8 bits, an attention projection at 2 bits and an unquantized
// head.
func mixedKimi() Spec {
	s := smallKimi()
	s.NGroup, s.TopKGroup = 4, 2
	s.QuantOverrides = map[string]*Quantization{
		"language_model.model.layers.1.mlp.switch_mlp.down_proj": {GroupSize: 32, Bits: 8},
		"language_model.model.layers.2.self_attn.q_b_proj":       {GroupSize: 64, Bits: 2},
		"language_model.lm_head":                                 nil,
	}
	return s
}
