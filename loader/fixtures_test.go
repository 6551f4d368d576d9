package loader

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// requireMLX loads MLX or skips (fails under MLX_REQUIRED=1).
func requireMLX(t testing.TB) {
	t.Helper()
	if err := mlx.Load(); err != nil {
		unavailable(t, "MLX is not available: %v", err)
	}
}

// ckpt builds the tensors of a test checkpoint with random bytes.
type ckpt struct {
	rng     *rand.Rand
	tensors []safetensors.TensorData
}

func newCkpt(seed uint64) *ckpt { return &ckpt{rng: rand.New(rand.NewPCG(seed, 7))} }

func (c *ckpt) add(name string, dt safetensors.Dtype, shape ...int64) {
	n := int64(dt.Size())
	for _, d := range shape {
		n *= d
	}
	b := make([]byte, n)
	for i := 0; i < len(b); i += 8 {
		v := c.rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	c.tensors = append(c.tensors, safetensors.TensorData{Name: name, Dtype: dt, Shape: shape, Data: b})
}

// qlinear adds a 4-bit, group-size-32 quantized linear layer as mlx-lm
// stores one: weight uint32 [..., out, in/8], scales and biases
// [..., out, in/32]; lead holds the expert axis of stacked experts.
func (c *ckpt) qlinear(name string, out, in int64, lead ...int64) {
	c.add(name+".weight", safetensors.U32, append(append([]int64{}, lead...), out, in/8)...)
	c.add(name+".scales", safetensors.F16, append(append([]int64{}, lead...), out, in/32)...)
	c.add(name+".biases", safetensors.F16, append(append([]int64{}, lead...), out, in/32)...)
}

// write writes the checkpoint into files shard files (tensors dealt out
// round-robin, so a layer spans files) and returns its directory.
func (c *ckpt) write(t testing.TB, files int) string {
	t.Helper()
	dir := t.TempDir()
	shards := make([][]safetensors.TensorData, files)
	for i, td := range c.tensors {
		shards[i%files] = append(shards[i%files], td)
	}
	require.NoError(t, safetensors.WriteDir(dir, shards, map[string]string{"format": "mlx"}))
	return dir
}

// kimiLike is a small checkpoint in the Kimi K2.5 layout (DeepSeek-V3
// family, mlx-lm 4-bit naming under language_model.): 4 heads, 3 layers,
// the first dense, the others MoE with 4 stacked experts, a vision tower
// and a projector.
func kimiLike(seed uint64) *ckpt {
	const (
		hidden, heads, qLora, kvLora, nope, rope, vHead = 64, 4, 32, 32, 16, 8, 16
		vocab, inter, moeInter, experts                 = 128, 128, 64, 4
	)
	c := newCkpt(seed)
	c.qlinear("language_model.model.embed_tokens", vocab, hidden)
	for l := range 3 {
		p := "language_model.model.layers." + itoa(l) + "."
		c.add(p+"input_layernorm.weight", safetensors.BF16, hidden)
		c.add(p+"post_attention_layernorm.weight", safetensors.BF16, hidden)
		c.qlinear(p+"self_attn.q_a_proj", qLora, hidden)
		c.add(p+"self_attn.q_a_layernorm.weight", safetensors.BF16, qLora)
		c.qlinear(p+"self_attn.q_b_proj", heads*(nope+rope), qLora)
		c.qlinear(p+"self_attn.kv_a_proj_with_mqa", kvLora+rope, hidden)
		c.add(p+"self_attn.kv_a_layernorm.weight", safetensors.BF16, kvLora)
		c.qlinear(p+"self_attn.kv_b_proj", heads*(nope+vHead), kvLora)
		c.qlinear(p+"self_attn.o_proj", hidden, heads*vHead)
		if l == 0 {
			c.qlinear(p+"mlp.gate_proj", inter, hidden)
			c.qlinear(p+"mlp.up_proj", inter, hidden)
			c.qlinear(p+"mlp.down_proj", hidden, inter)
			continue
		}
		c.add(p+"mlp.gate.weight", safetensors.BF16, experts, hidden)
		c.add(p+"mlp.gate.e_score_correction_bias", safetensors.F32, experts)
		c.qlinear(p+"mlp.switch_mlp.gate_proj", moeInter, hidden, experts)
		c.qlinear(p+"mlp.switch_mlp.up_proj", moeInter, hidden, experts)
		c.qlinear(p+"mlp.switch_mlp.down_proj", hidden, moeInter, experts)
		c.qlinear(p+"mlp.shared_experts.gate_proj", moeInter, hidden)
		c.qlinear(p+"mlp.shared_experts.up_proj", moeInter, hidden)
		c.qlinear(p+"mlp.shared_experts.down_proj", hidden, moeInter)
	}
	c.add("language_model.model.norm.weight", safetensors.BF16, hidden)
	c.qlinear("language_model.lm_head", vocab, hidden)
	c.add("vision_tower.encoder.blocks.0.attn.qkv.weight", safetensors.BF16, 96, 32)
	c.add("vision_tower.encoder.blocks.0.attn.qkv.bias", safetensors.BF16, 96)
	c.add("mm_projector.proj.0.weight", safetensors.BF16, hidden, 32)
	return c
}

// llamaLike is a small Llama/Qwen2-style checkpoint: 8 heads, 4 key-value
// heads (grouped-query attention), q/k/v biases, bf16.
func llamaLike(seed uint64, hidden, inter, layers, vocab int64) *ckpt {
	const heads, kvHeads = 8, 4
	hd := hidden / heads
	c := newCkpt(seed)
	c.add("model.embed_tokens.weight", safetensors.BF16, vocab, hidden)
	for l := range layers {
		p := "model.layers." + itoa(int(l)) + "."
		c.add(p+"input_layernorm.weight", safetensors.BF16, hidden)
		c.add(p+"self_attn.q_proj.weight", safetensors.BF16, heads*hd, hidden)
		c.add(p+"self_attn.q_proj.bias", safetensors.BF16, heads*hd)
		c.add(p+"self_attn.k_proj.weight", safetensors.BF16, kvHeads*hd, hidden)
		c.add(p+"self_attn.k_proj.bias", safetensors.BF16, kvHeads*hd)
		c.add(p+"self_attn.v_proj.weight", safetensors.BF16, kvHeads*hd, hidden)
		c.add(p+"self_attn.v_proj.bias", safetensors.BF16, kvHeads*hd)
		c.add(p+"self_attn.o_proj.weight", safetensors.BF16, hidden, heads*hd)
		c.add(p+"post_attention_layernorm.weight", safetensors.BF16, hidden)
		c.add(p+"mlp.gate_proj.weight", safetensors.BF16, inter, hidden)
		c.add(p+"mlp.up_proj.weight", safetensors.BF16, inter, hidden)
		c.add(p+"mlp.down_proj.weight", safetensors.BF16, hidden, inter)
	}
	c.add("model.norm.weight", safetensors.BF16, hidden)
	c.add("lm_head.weight", safetensors.BF16, vocab, hidden)
	return c
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

// bigGuard is a guard that never trips on this machine's test sizes, so
// that tests do not depend on the machine's memory.
func bigGuard(t testing.TB) Options {
	t.Helper()
	return Options{Guard: newGuard(t, 1<<50, 1<<30)}
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	require.NoError(t, err)
	return st.Size()
}
