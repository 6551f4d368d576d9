package ckptgen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
)

// Model types a Spec can describe.
const (
	// KimiK25Type is a Kimi K2.5 checkpoint: a DeepSeek-V3 language model
	// (multi-head latent attention, routed plus shared experts) under
	// "language_model.", with a vision tower beside it.
	KimiK25Type = "kimi_k25"
	// LlamaType is a dense Llama checkpoint with grouped-query attention.
	LlamaType = "llama"
	// Qwen2Type is a Llama with biases on the query, key and value
	// projections.
	Qwen2Type = "qwen2"
	// Qwen3Type is a Llama with an RMS norm on every query and key head.
	Qwen3Type = "qwen3"
)

// llamaFamily reports whether t is laid out as a Llama.
func llamaFamily(t string) bool { return t == LlamaType || t == Qwen2Type || t == Qwen3Type }

// Quantization is mlx-lm's affine quantization: every Linear, Embedding,
// SwitchLinear and MultiLinear whose input dimension is a multiple of
// GroupSize is stored as packed uint32 weights with one scale and one bias
// per group.
type Quantization struct {
	GroupSize int `json:"group_size"`
	Bits      int `json:"bits"`
}

// Spec is the shape of a checkpoint: enough to name every tensor, give it a
// dtype and a shape, and write config.json. Fields that a model type does
// not use are zero.
type Spec struct {
	ModelType string `json:"model_type"`

	Vocab        int `json:"vocab"`
	Hidden       int `json:"hidden"`
	Layers       int `json:"layers"`
	Heads        int `json:"heads"`
	KVHeads      int `json:"kv_heads,omitempty"` // Llama family
	HeadDim      int `json:"head_dim,omitempty"` // Llama family
	Intermediate int `json:"intermediate"`       // dense MLP
	// TieEmbeddings makes the output head the token embeddings (Llama
	// family): no lm_head tensor, tie_word_embeddings true.
	TieEmbeddings bool `json:"tie_embeddings,omitempty"`

	// Mixture of experts (Kimi K2.5): layers from FirstDense on hold
	// Experts routed experts, stacked in one tensor per projection, of which
	// ActiveExperts run per token, and SharedExperts always-on ones.
	Experts         int `json:"experts,omitempty"`
	ActiveExperts   int `json:"active_experts,omitempty"`
	SharedExperts   int `json:"shared_experts,omitempty"`
	MoEIntermediate int `json:"moe_intermediate,omitempty"`
	FirstDense      int `json:"first_k_dense_replace,omitempty"`
	// NGroup and TopKGroup are DeepSeek-V3's group-limited routing: the
	// experts form NGroup groups and only the TopKGroup best groups are
	// chosen from. 0 means 1 (no groups).
	NGroup    int `json:"n_group,omitempty"`
	TopKGroup int `json:"topk_group,omitempty"`

	// Multi-head latent attention (Kimi K2.5).
	QLoRARank     int `json:"q_lora_rank,omitempty"`
	KVLoRARank    int `json:"kv_lora_rank,omitempty"`
	QKNopeHeadDim int `json:"qk_nope_head_dim,omitempty"`
	QKRopeHeadDim int `json:"qk_rope_head_dim,omitempty"`
	VHeadDim      int `json:"v_head_dim,omitempty"`

	// Quant is nil for an unquantized checkpoint.
	Quant *Quantization `json:"quantization,omitempty"`
	// QuantOverrides gives modules (by path, "model.layers.0.mlp.down_proj")
	// a quantization of their own, or none (a nil value), as mlx-lm's mixed
	// recipes write them into config.json next to the global one.
	QuantOverrides map[string]*Quantization `json:"quantization_overrides,omitempty"`
	// Dtype is the safetensors dtype of unquantized floating-point tensors
	// and of scales and biases: "BF16", "F16" or "F32".
	Dtype string `json:"dtype"`

	// Files is the number of shard files the tensors are spread over.
	Files int `json:"files"`

	// Vision adds a vision tower (VisionLayers blocks of width VisionHidden)
	// and its projector, kept unquantized as converters keep them. mlx-lm's
	// kimi_k25 drops these tensors on load; they are there so a loader meets
	// the names it has to skip.
	Vision             bool `json:"vision,omitempty"`
	VisionLayers       int  `json:"vision_layers,omitempty"`
	VisionHidden       int  `json:"vision_hidden,omitempty"`
	VisionIntermediate int  `json:"vision_intermediate,omitempty"`
}

// KimiK25 returns the full-size Kimi K2.5 as mlx-lm's 4-bit conversion
// stores it: 61 layers (1 dense, 60 with 384 routed experts and 1 shared),
// hidden size 7168, 64 heads, vocabulary 163840, group size 64, spread over
// 182 shard files, with the vision tower.
func KimiK25() Spec {
	return Spec{
		ModelType:          KimiK25Type,
		Vocab:              163840,
		Hidden:             7168,
		Layers:             61,
		Heads:              64,
		Intermediate:       18432,
		Experts:            384,
		ActiveExperts:      8,
		SharedExperts:      1,
		MoEIntermediate:    2048,
		FirstDense:         1,
		QLoRARank:          1536,
		KVLoRARank:         512,
		QKNopeHeadDim:      128,
		QKRopeHeadDim:      64,
		VHeadDim:           128,
		Quant:              &Quantization{GroupSize: 64, Bits: 4},
		Dtype:              "BF16",
		Files:              182,
		Vision:             true,
		VisionLayers:       27,
		VisionHidden:       1152,
		VisionIntermediate: 4304,
	}
}

// Llama returns a dense Llama with the dimensions of Llama 3.1 8B, 4-bit
// quantized with group size 64, in 4 shard files.
func Llama() Spec {
	return Spec{
		ModelType:    LlamaType,
		Vocab:        128256,
		Hidden:       4096,
		Layers:       32,
		Heads:        32,
		KVHeads:      8,
		HeadDim:      128,
		Intermediate: 14336,
		Quant:        &Quantization{GroupSize: 64, Bits: 4},
		Dtype:        "BF16",
		Files:        4,
	}
}

// minVocab keeps every scaled vocabulary large enough for the generated
// tokenizer's tokens.
const minVocab = 512

// Scale returns s with every width multiplied by f: hidden and intermediate
// sizes, LoRA ranks, head dimensions, head counts, vocabulary, vision width.
// Layer, expert and file counts are left alone; set them on the result.
//
// Scaled widths are rounded to stay loadable and shardable over two ranks:
// a width that is the input of a quantized matrix becomes a multiple of the
// group size (at least one group), the intermediate sizes a multiple of two
// groups (down_proj's input is split in halves), head counts stay even (at
// least 2), the RoPE dimension a multiple of 8, and the vocabulary a
// multiple of 256 of at least 512.
func (s Spec) Scale(f float64) Spec {
	if f == 1 || f <= 0 {
		return s
	}
	unit := 64
	if s.Quant != nil {
		unit = s.Quant.GroupSize
	}
	width := func(n int) int { return scaleTo(n, f, unit, unit) }
	s.Vocab = max(minVocab, scaleTo(s.Vocab, f, 256, 256))
	oldHeads := s.Heads
	s.Heads = scaleTo(s.Heads, f, 2, 2)
	if s.KVHeads > 0 {
		// Keep the query-per-key-head ratio where it divides.
		kv := max(2, s.Heads*s.KVHeads/oldHeads)
		for s.Heads%kv != 0 {
			kv--
		}
		s.KVHeads = kv
	}
	if s.HeadDim > 0 {
		s.HeadDim = width(s.HeadDim)
		s.Hidden = s.Heads * s.HeadDim
		if s.Hidden%unit != 0 {
			s.Hidden = width(s.Hidden)
		}
	} else {
		s.Hidden = width(s.Hidden)
	}
	s.Intermediate = scaleTo(s.Intermediate, f, 2*unit, 2*unit)
	if s.MoEIntermediate > 0 {
		s.MoEIntermediate = scaleTo(s.MoEIntermediate, f, 2*unit, 2*unit)
	}
	if s.QLoRARank > 0 {
		s.QLoRARank = width(s.QLoRARank)
	}
	if s.KVLoRARank > 0 {
		s.KVLoRARank = width(s.KVLoRARank)
	}
	if s.QKNopeHeadDim > 0 {
		s.QKNopeHeadDim = width(s.QKNopeHeadDim)
	}
	if s.VHeadDim > 0 {
		s.VHeadDim = width(s.VHeadDim)
	}
	if s.QKRopeHeadDim > 0 {
		s.QKRopeHeadDim = scaleTo(s.QKRopeHeadDim, f, 8, 8)
	}
	if s.VisionHidden > 0 {
		s.VisionHidden = scaleTo(s.VisionHidden, f, 16, 16)
		s.VisionIntermediate = scaleTo(s.VisionIntermediate, f, 16, 16)
	}
	return s
}

// scaleTo returns n×f rounded to the nearest multiple of unit, at least lo.
func scaleTo(n int, f float64, unit, lo int) int {
	v := int(math.Round(float64(n)*f/float64(unit))) * unit
	return max(v, lo)
}

// SpecError reports a Spec that cannot be laid out.
type SpecError struct {
	Field  string
	Detail string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("ckptgen: spec %s: %s", e.Field, e.Detail)
}

// Validate reports the first inconsistency in s as a *SpecError.
func (s Spec) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &SpecError{Field: field, Detail: fmt.Sprintf(format, args...)}
	}
	switch s.ModelType {
	case KimiK25Type, LlamaType, Qwen2Type, Qwen3Type:
	default:
		return bad("model_type", "%q is none of %q, %q, %q, %q", s.ModelType, KimiK25Type, LlamaType, Qwen2Type, Qwen3Type)
	}
	switch s.Dtype {
	case "BF16", "F16", "F32":
	default:
		return bad("dtype", "%q is not BF16, F16 or F32", s.Dtype)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab", s.Vocab}, {"hidden", s.Hidden}, {"layers", s.Layers}, {"heads", s.Heads}, {"intermediate", s.Intermediate}, {"files", s.Files}} {
		if f.v <= 0 {
			return bad(f.name, "is %d, must be positive", f.v)
		}
	}
	if s.Vocab < minVocab {
		return bad("vocab", "is %d, must be at least %d for the generated tokenizer", s.Vocab, minVocab)
	}
	for _, q := range s.quants() {
		if q.GroupSize != 32 && q.GroupSize != 64 && q.GroupSize != 128 {
			return bad("quantization.group_size", "is %d, MLX takes 32, 64 or 128", q.GroupSize)
		}
		if q.Bits <= 0 || 32%q.Bits != 0 {
			return bad("quantization.bits", "is %d, must divide 32 (2, 4 or 8)", q.Bits)
		}
	}
	if len(s.QuantOverrides) > 0 && s.Quant == nil {
		return bad("quantization_overrides", "need a global quantization beside them")
	}
	switch s.ModelType {
	case LlamaType, Qwen2Type, Qwen3Type:
		if s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 {
			return bad("kv_heads", "%d does not divide heads %d", s.KVHeads, s.Heads)
		}
		if s.HeadDim <= 0 || s.HeadDim%2 != 0 {
			return bad("head_dim", "is %d, must be positive and even", s.HeadDim)
		}
	case KimiK25Type:
		for _, f := range []struct {
			name string
			v    int
		}{{"q_lora_rank", s.QLoRARank}, {"kv_lora_rank", s.KVLoRARank}, {"qk_nope_head_dim", s.QKNopeHeadDim}, {"qk_rope_head_dim", s.QKRopeHeadDim}, {"v_head_dim", s.VHeadDim}} {
			if f.v <= 0 {
				return bad(f.name, "is %d, must be positive", f.v)
			}
		}
		if s.QKRopeHeadDim%2 != 0 {
			return bad("qk_rope_head_dim", "is %d, must be even", s.QKRopeHeadDim)
		}
		if s.FirstDense < 0 || s.FirstDense > s.Layers {
			return bad("first_k_dense_replace", "is %d, outside 0..%d layers", s.FirstDense, s.Layers)
		}
		if s.FirstDense < s.Layers {
			if s.Experts <= 0 || s.MoEIntermediate <= 0 {
				return bad("experts", "MoE layers need experts (%d) and moe_intermediate (%d) positive", s.Experts, s.MoEIntermediate)
			}
			if s.ActiveExperts <= 0 || s.ActiveExperts > s.Experts {
				return bad("active_experts", "is %d, must be within 1..%d experts", s.ActiveExperts, s.Experts)
			}
			if s.SharedExperts <= 0 {
				return bad("shared_experts", "is %d, must be positive", s.SharedExperts)
			}
		}
		if g := max(s.NGroup, 1); s.Experts > 0 && s.Experts%g != 0 {
			return bad("n_group", "%d does not divide %d experts", g, s.Experts)
		}
		if g := max(s.NGroup, 1); s.TopKGroup < 0 || s.TopKGroup > g {
			return bad("topk_group", "is %d, outside 0..%d groups", s.TopKGroup, g)
		}
		if s.Vision && (s.VisionLayers <= 0 || s.VisionHidden <= 0 || s.VisionIntermediate <= 0) {
			return bad("vision", "a vision tower needs positive layers, hidden and intermediate sizes")
		}
	}
	return nil
}

// Hash returns a hex digest that identifies the checkpoint s describes, with
// seed, as Write lays it out: equal hashes mean equal bytes.
func (s Spec) Hash(seed uint64) string {
	// A struct of ints, strings and bools always encodes.
	b, _ := json.Marshal(struct {
		Format int    `json:"format"`
		Spec   Spec   `json:"spec"`
		Seed   uint64 `json:"seed"`
	}{formatVersion, s, seed})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// formatVersion changes whenever Write would lay out the same Spec and seed
// differently, so that stamps of older checkpoints stop matching.
const formatVersion = 2

// quants lists the spec's quantizations: the global one and every override.
func (s Spec) quants() []*Quantization {
	var out []*Quantization
	if s.Quant != nil {
		out = append(out, s.Quant)
	}
	for _, q := range s.QuantOverrides {
		if q != nil {
			out = append(out, q)
		}
	}
	return out
}
