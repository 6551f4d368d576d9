// Package ckptgen generates checkpoints with the exact structure of real
// models and random data, so that loading a 600 GB-class model can be
// tested and measured on a machine that has never seen its weights.
//
// A Spec is the shape of a model. KimiK25 returns Kimi K2.5 as mlx-lm's
// 4-bit conversion stores it: model_type kimi_k25, the DeepSeek-V3
// language model under "language_model.", attention already split per head
// into embed_q and unembed_out (what mlx-lm's sanitize makes of kv_b_proj),
// the routed experts of each MoE layer stacked into one [experts, out, in]
// tensor per projection (switch_mlp), and a vision tower beside it that
// mlx-lm drops on load. Llama returns a dense Llama 3.1 8B-shaped model;
// the same layout with model_type qwen2 adds biases to the query, key and
// value projections, with qwen3 an RMS norm per query and key head.
// A Spec can also tie the output head to the embeddings, route experts in
// groups (n_group, topk_group), store everything in float32 unquantized, or
// give modules quantizations of their own (QuantOverrides), which config.json
// then lists as mlx-lm's mixed recipes do.
// Scale shrinks every width by a factor while keeping what loading and
// sharding need divisible; layer, expert and shard-file counts are plain
// fields to set.
//
// Tensors lists every tensor (name, dtype, shape, bytes) without writing
// anything; the list follows mlx-lm's quantization rule: a Linear,
// Embedding, SwitchLinear or MultiLinear whose input dimension is a whole
// number of groups is stored as a packed U32 weight [..., out, in·bits/32]
// with scales and biases [..., out, in/group_size] in the float dtype; the
// MoE router (a bare parameter, not a Linear) and norms stay unquantized,
// and the router's e_score_correction_bias stays F32.
//
// Write streams the shard files through package safetensors' Writer, 1 MiB
// at a time, with random data from a PCG generator seeded by the seed and
// the tensor's name: a tensor's bytes do not depend on which file holds it,
// files can be written in parallel, and the same seed gives the same bytes.
// Packed weights are uniform random bits; floating-point tensors hold small
// values chosen so that mlx-lm's forward pass stays finite. Next to the
// shards go model.safetensors.index.json, config.json, a byte-level BPE
// tokenizer (one token per byte, then one per remaining id, so every id
// decodes) that transformers loads offline without remote code, and a
// stamp (StampName) written last, which lets a second Write of the same
// spec and seed return at once.
package ckptgen
