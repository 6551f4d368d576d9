package ckptgen

import (
	"fmt"
	"strconv"
	"strings"
)

// TensorDesc describes one tensor of a checkpoint: everything but its bytes.
type TensorDesc struct {
	Name  string
	Dtype string // safetensors spelling: "U32", "BF16", "F32"
	Shape []int64
	Bytes int64
}

func (t TensorDesc) String() string {
	return fmt.Sprintf("%s %s %v %d", t.Name, t.Dtype, t.Shape, t.Bytes)
}

// Totals sums a tensor list.
type Totals struct {
	Tensors int
	Bytes   int64
	// Params counts model parameters: a packed uint32 weight counts its
	// unpacked elements; quantization scales and biases are not counted.
	Params int64
}

// Sum returns the totals of ts, given the bits of the spec's quantization.
func (s Spec) Sum(ts []TensorDesc) Totals {
	var t Totals
	for _, d := range ts {
		t.Tensors++
		t.Bytes += d.Bytes
		if s.Quant != nil && (strings.HasSuffix(d.Name, ".scales") || strings.HasSuffix(d.Name, ".biases")) {
			continue
		}
		n := int64(1)
		for _, v := range d.Shape {
			n *= v
		}
		if d.Dtype == "U32" && s.Quant != nil {
			n *= int64(32 / s.Quant.Bits)
		}
		t.Params += n
	}
	return t
}

func dtypeSize(dt string) int64 {
	switch dt {
	case "U32", "F32":
		return 4
	case "BF16", "F16":
		return 2
	}
	return 0
}

// list accumulates tensors in checkpoint order.
type list struct {
	spec Spec
	out  []TensorDesc
}

func (l *list) add(name, dtype string, shape ...int64) {
	n := dtypeSize(dtype)
	for _, d := range shape {
		n *= d
	}
	l.out = append(l.out, TensorDesc{Name: name, Dtype: dtype, Shape: shape, Bytes: n})
}

// float adds an unquantized floating-point tensor in the spec's dtype.
func (l *list) float(name string, shape ...int64) { l.add(name, l.spec.Dtype, shape...) }

// linear adds the weight of a matrix (Linear, Embedding, stacked experts,
// per-head MultiLinear) whose last axis is the input: quantized as mlx-lm's
// converter does it, that is, when the input is a whole number of groups.
func (l *list) linear(module string, shape ...int64) {
	q := l.spec.Quant
	if o, ok := l.spec.QuantOverrides[module]; ok {
		q = o
	}
	in := shape[len(shape)-1]
	if q == nil || in%int64(q.GroupSize) != 0 {
		l.float(module+".weight", shape...)
		return
	}
	lead := shape[:len(shape)-1]
	with := func(last int64) []int64 { return append(append([]int64{}, lead...), last) }
	l.add(module+".weight", "U32", with(in*int64(q.Bits)/32)...)
	l.float(module+".scales", with(in/int64(q.GroupSize))...)
	l.float(module+".biases", with(in/int64(q.GroupSize))...)
}

// Tensors returns every tensor of the checkpoint s describes, with mlx-lm's
// names, in the order Write stores them: embeddings, layers in order, final
// norm, output head, then the vision tower. It returns nil if s is not valid.
func (s Spec) Tensors() []TensorDesc {
	if s.Validate() != nil {
		return nil
	}
	l := &list{spec: s}
	switch s.ModelType {
	case KimiK25Type:
		s.kimiTensors(l)
	case LlamaType, Qwen2Type, Qwen3Type:
		s.llamaTensors(l)
	}
	return l.out
}

func (s Spec) kimiTensors(l *list) {
	h := int64(s.Hidden)
	heads := int64(s.Heads)
	qHead := int64(s.QKNopeHeadDim + s.QKRopeHeadDim)
	kvLoRA := int64(s.KVLoRARank)
	lm := "language_model."
	l.linear(lm+"model.embed_tokens", int64(s.Vocab), h)
	for i := range s.Layers {
		p := lm + "model.layers." + strconv.Itoa(i) + "."
		l.float(p+"input_layernorm.weight", h)
		a := p + "self_attn."
		l.linear(a+"q_a_proj", int64(s.QLoRARank), h)
		l.float(a+"q_a_layernorm.weight", int64(s.QLoRARank))
		l.linear(a+"q_b_proj", heads*qHead, int64(s.QLoRARank))
		l.linear(a+"kv_a_proj_with_mqa", kvLoRA+int64(s.QKRopeHeadDim), h)
		l.float(a+"kv_a_layernorm.weight", kvLoRA)
		// mlx-lm's sanitize splits kv_b_proj per head into these two; a
		// converted checkpoint stores them already split.
		l.linear(a+"embed_q", heads, kvLoRA, int64(s.QKNopeHeadDim))
		l.linear(a+"unembed_out", heads, int64(s.VHeadDim), kvLoRA)
		l.linear(a+"o_proj", h, heads*int64(s.VHeadDim))
		l.float(p+"post_attention_layernorm.weight", h)
		m := p + "mlp."
		if i < s.FirstDense {
			inter := int64(s.Intermediate)
			l.linear(m+"gate_proj", inter, h)
			l.linear(m+"up_proj", inter, h)
			l.linear(m+"down_proj", h, inter)
			continue
		}
		e := int64(s.Experts)
		inter := int64(s.MoEIntermediate)
		// The router is a plain parameter, not a Linear, so it is never
		// quantized; its correction bias stays float32 on conversion.
		l.float(m+"gate.weight", e, h)
		l.add(m+"gate.e_score_correction_bias", "F32", e)
		l.linear(m+"switch_mlp.gate_proj", e, inter, h)
		l.linear(m+"switch_mlp.up_proj", e, inter, h)
		l.linear(m+"switch_mlp.down_proj", e, h, inter)
		shared := inter * int64(s.SharedExperts)
		l.linear(m+"shared_experts.gate_proj", shared, h)
		l.linear(m+"shared_experts.up_proj", shared, h)
		l.linear(m+"shared_experts.down_proj", h, shared)
	}
	l.float(lm+"model.norm.weight", h)
	l.linear(lm+"lm_head", int64(s.Vocab), h)
	if s.Vision {
		s.visionTensors(l)
	}
}

// visionTensors lays out a MoonViT-style tower and its patch-merging
// projector. Only their presence and size matter: mlx-lm drops them on load.
func (s Spec) visionTensors(l *list) {
	vh, vi := int64(s.VisionHidden), int64(s.VisionIntermediate)
	const patch, posGrid = 14, 64
	v := "vision_tower."
	l.float(v+"patch_embed.proj.weight", vh, 3, patch, patch)
	l.float(v+"patch_embed.proj.bias", vh)
	l.float(v+"patch_embed.pos_emb.weight", posGrid, posGrid, vh)
	for i := range s.VisionLayers {
		b := v + "encoder.blocks." + strconv.Itoa(i) + "."
		l.float(b+"norm0.weight", vh)
		l.float(b+"norm0.bias", vh)
		l.float(b+"wqkv.weight", 3*vh, vh)
		l.float(b+"wqkv.bias", 3*vh)
		l.float(b+"wo.weight", vh, vh)
		l.float(b+"wo.bias", vh)
		l.float(b+"norm1.weight", vh)
		l.float(b+"norm1.bias", vh)
		l.float(b+"mlp.fc0.weight", vi, vh)
		l.float(b+"mlp.fc0.bias", vi)
		l.float(b+"mlp.fc1.weight", vh, vi)
		l.float(b+"mlp.fc1.bias", vh)
	}
	l.float(v+"encoder.final_layernorm.weight", vh)
	l.float(v+"encoder.final_layernorm.bias", vh)
	merged := 4 * vh // a 2×2 patch merge
	l.float("mm_projector.pre_norm.weight", vh)
	l.float("mm_projector.pre_norm.bias", vh)
	l.float("mm_projector.proj.0.weight", merged, merged)
	l.float("mm_projector.proj.0.bias", merged)
	l.float("mm_projector.proj.2.weight", int64(s.Hidden), merged)
	l.float("mm_projector.proj.2.bias", int64(s.Hidden))
}

func (s Spec) llamaTensors(l *list) {
	h := int64(s.Hidden)
	hd := int64(s.HeadDim)
	inter := int64(s.Intermediate)
	l.linear("model.embed_tokens", int64(s.Vocab), h)
	for i := range s.Layers {
		p := "model.layers." + strconv.Itoa(i) + "."
		l.float(p+"input_layernorm.weight", h)
		l.linear(p+"self_attn.q_proj", int64(s.Heads)*hd, h)
		l.linear(p+"self_attn.k_proj", int64(s.KVHeads)*hd, h)
		l.linear(p+"self_attn.v_proj", int64(s.KVHeads)*hd, h)
		if s.ModelType == Qwen2Type {
			l.float(p+"self_attn.q_proj.bias", int64(s.Heads)*hd)
			l.float(p+"self_attn.k_proj.bias", int64(s.KVHeads)*hd)
			l.float(p+"self_attn.v_proj.bias", int64(s.KVHeads)*hd)
		}
		if s.ModelType == Qwen3Type {
			l.float(p+"self_attn.q_norm.weight", hd)
			l.float(p+"self_attn.k_norm.weight", hd)
		}
		l.linear(p+"self_attn.o_proj", h, int64(s.Heads)*hd)
		l.float(p+"post_attention_layernorm.weight", h)
		l.linear(p+"mlp.gate_proj", inter, h)
		l.linear(p+"mlp.up_proj", inter, h)
		l.linear(p+"mlp.down_proj", h, inter)
	}
	l.float("model.norm.weight", h)
	if !s.TieEmbeddings {
		l.linear("lm_head", int64(s.Vocab), h)
	}
}
