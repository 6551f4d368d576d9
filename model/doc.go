// Package model runs the forward passes of the models the loader loads —
// DeepSeek-V3 and Kimi K2.x (deepseek_v3, kimi_k2, kimi_k25) and the Llama
// family (llama, qwen2, qwen3) — tensor-parallel over a jaccl.Group, or in
// pipeline stages placed by memory, with a KV cache, sampling and streaming
// generation.
//
// # The reference is mlx-lm
//
// Every forward pass is mlx-lm 0.32's, op for op: the same MLX operations
// in the same order with the same constants (DeepSeek's attention norms use
// 1e-6 whatever rms_norm_eps says; the rotary frequencies of llama3 and
// YaRN scaling are computed with MLX ops as mlx-lm computes them), so that
// the logits are mlx-lm's bit for bit, in float32 and in the bfloat16 and
// float16 of real checkpoints (a Python float next to an array is a scalar
// of the array's dtype in MLX, and so is every scalar here). The tests hold this
// against mlx-lm itself, run at test time on the same checkpoints. A model
// reads its config.json as mlx-lm does (ReadConfig: the same fields and
// defaults, "quantization" with per-module overrides), and quantized
// layers take their bits and group size from config.json, or from the
// arrays' shapes where it names none — mixed 2- to 8-bit models and
// unquantized routers included.
//
// # Tensor parallelism
//
// Load takes this rank's shard from package loader, split by the rules
// that reproduce mlx-lm's shard() (Config.Rules): nothing is re-sharded
// here. Each rank holds 1/N of the attention heads and of every MLP's and
// expert's intermediate size; each layer all-sums twice, after o_proj and
// after the MLP (routed and shared experts together), on the stream the
// group's back-end needs. Router, norms, embeddings and head are
// replicated, so every rank computes the same routing and the same logits.
//
// # Pipeline parallelism
//
// With Options.Placement (loader.Place: consecutive layers per stage,
// placed by memory), each rank loads and binds its stage's layers only —
// the embeddings on the first stage, the final norm and head on the last —
// and a forward pass runs them between a recv of the previous stage's
// hidden states and a send to the next (one micro-batch, on the group's
// stream). The last stage's logits are then all-summed over the whole
// group, every other rank giving exact zeros, so that every rank holds
// them and samples the same token: Logits and Generate run unchanged, and
// the logits are one rank's bit for bit. The price is one all-sum of the
// logits per step (a vocabulary of float32 per decoded token). A send is
// kept with the cache, so a prefill, which evaluates the cache alone, runs
// it too.
//
// A stage of several ranks (TP × PP) holds consecutive ranks. The previous
// stage's last rank hands the hidden states to its first, which relays
// them along the stage; the stage's last rank hands its output on. Within
// the stage, every sharded-to-all layer sums over the stage's ranks: over a
// split of the group with mpi; with ring and jaccl, which cannot split a
// group and send to a rank's neighbours only, by a chain of neighbour
// exchanges evaluated in rank order as the forward pass goes, so that no
// two ranks both wait in a send however large the prefill (at TP=2 the sum
// is the all-sum's bit for bit, and the logits TP=2's alone). nccl has no
// send and recv, and Load refuses a pipeline over it.
//
// # One trip to the MLX thread per step
//
// A Kimi token is thousands of MLX calls. Each step's graph is built inside
// one mlx.Do, by a scope that keeps the first error (the model code reads
// like mlx-lm's, one op a line, with one check at the end) and owns every
// intermediate handle: they are freed as the step ends, deterministically,
// keeping only the step's results and the cache.
//
// # Generation
//
// Generate follows mlx-lm's generate_step: the prompt but its last token
// is prefilled in chunks, the cache evaluated after each; then step n+1 is
// built on step n's still-lazy token and evaluated asynchronously while
// step n's token is read. Tokens is an iter.Seq2 that stops at MaxTokens,
// at a stop token, when the consumer stops or when its context is
// cancelled — and in every case waits for the step in flight first, since
// a forward pass started while a peer still runs the previous step's
// collectives computes garbage. On a group a consumer must not stop on
// one rank alone; GenerateOptions.Halt lets any rank end the generation on
// all of them at the same token: its flag rides as one more element in
// each step's first all-sum over the group, so it adds no collective.
// Stats gives prompt and generation tokens per second, time to first
// token and peak memory.
//
// The KV cache is mlx-lm's KVCache (grown in steps of 256 positions,
// written with slice_update); for DeepSeek-V3 it holds the latent and the
// rotary key, the same on every rank.
package model
