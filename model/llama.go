package model

import (
	"fmt"
	"math"

	"github.com/mlxdist/mlxdist/mlx"
)

// llama runs mlx-lm's llama, qwen2 and qwen3: grouped-query attention with
// rotary embeddings (qwen2 with biases on q, k and v; qwen3 with an RMS
// norm on every query and key head), a SwiGLU MLP, tied or separate output
// head. Under tensor parallelism each rank holds heads/N query heads and
// kvHeads/N key-value heads, and o_proj and down_proj are all-summed.
type llama struct {
	cfg           *Config
	embed         *linear
	layers        []llamaLayer
	norm          *mlx.Array
	head          *linear // nil: tied to embed
	rope          *rope
	heads, kvHead int // on this rank
	scale         float64
}

type llamaLayer struct {
	inNorm, postNorm *mlx.Array
	q, k, v, o       *linear
	qNorm, kNorm     *mlx.Array // qwen3
	gate, up, down   *linear
}

func newLlama(s *scope, b *binder, n int) (*llama, error) {
	c := b.cfg
	if c.NumAttentionHeads%n != 0 || c.NumKeyValueHeads%n != 0 {
		return nil, fmt.Errorf("model: %d ranks do not divide %d attention heads and %d key-value heads: use a rank count that divides both", n, c.NumAttentionHeads, c.NumKeyValueHeads)
	}
	if c.IntermediateSize%n != 0 {
		return nil, fmt.Errorf("model: %d ranks do not divide intermediate_size %d", n, c.IntermediateSize)
	}
	m := &llama{cfg: c, heads: c.NumAttentionHeads / n, kvHead: c.NumKeyValueHeads / n, scale: math.Pow(float64(c.HeadDim), -0.5)}
	h, hd, inter := c.HiddenSize, c.HeadDim, c.IntermediateSize/n
	m.embed = b.linear("model.embed_tokens", h, c.VocabSize)
	m.layers = make([]llamaLayer, c.NumHiddenLayers)
	for i := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		l := &m.layers[i]
		l.inNorm = b.norm(p+"input_layernorm", h)
		l.postNorm = b.norm(p+"post_attention_layernorm", h)
		l.q = b.linear(p+"self_attn.q_proj", h, m.heads*hd)
		l.k = b.linear(p+"self_attn.k_proj", h, m.kvHead*hd)
		l.v = b.linear(p+"self_attn.v_proj", h, m.kvHead*hd)
		l.o = b.linear(p+"self_attn.o_proj", m.heads*hd, h)
		if c.Arch == Qwen3 {
			l.qNorm = b.norm(p+"self_attn.q_norm", hd)
			l.kNorm = b.norm(p+"self_attn.k_norm", hd)
		}
		l.gate = b.linear(p+"mlp.gate_proj", h, inter)
		l.up = b.linear(p+"mlp.up_proj", h, inter)
		l.down = b.linear(p+"mlp.down_proj", inter, h)
	}
	m.norm = b.norm("model.norm", h)
	if !c.TieWordEmbeddings {
		m.head = b.linear("lm_head", h, c.VocabSize)
	} else {
		b.optional("lm_head.weight") // mlx-lm's sanitize drops it
	}
	if b.err != nil {
		return nil, b.err
	}
	r, err := newRope(s, hd, c.RopeTheta, c.RopeTraditional, c.RopeScaling, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, err
	}
	m.rope = r
	return m, nil
}

func (m *llama) numLayers() int { return len(m.layers) }

func (m *llama) ropeFreqs() *mlx.Array { return m.rope.freqs }

// forward is LlamaModel.__call__ then the head: ids [1, L] to logits
// [1, L, vocab]. caches is nil for a full forward without a cache.
func (m *llama) forward(s *scope, ids *mlx.Array, caches []*kvCache, t *tp) *mlx.Array {
	h := t.input(s, m.embed, ids)
	L := ids.Shape()[1]
	mode := ""
	if L > 1 {
		mode = "causal"
	}
	first, end := t.layers(len(m.layers))
	for i := first; i < end; i++ {
		var c *kvCache
		if caches != nil {
			c = caches[i]
		}
		h = m.block(s, &m.layers[i], h, mode, c, t)
	}
	if out, done := t.passOn(s, h, caches, m.cfg.VocabSize); done {
		return out
	}
	h = s.rmsNorm(h, m.norm, m.cfg.RMSNormEps)
	if m.head == nil {
		return t.output(s, s.asLinear(m.embed, h))
	}
	return t.output(s, s.linear(m.head, h))
}

func (m *llama) block(s *scope, l *llamaLayer, x *mlx.Array, mode string, c *kvCache, t *tp) *mlx.Array {
	r := m.attention(s, l, s.rmsNorm(x, l.inNorm, m.cfg.RMSNormEps), mode, c, t)
	h := s.add(x, r)
	xn := s.rmsNorm(h, l.postNorm, m.cfg.RMSNormEps)
	r = s.linearToAll(l.down, s.mul(s.silu(s.linear(l.gate, xn)), s.linear(l.up, xn)), t)
	return s.add(h, r)
}

func (m *llama) attention(s *scope, l *llamaLayer, x *mlx.Array, mode string, c *kvCache, t *tp) *mlx.Array {
	if s.err != nil {
		return nil
	}
	shape := x.Shape()
	B, L := shape[0], shape[1]
	q, k, v := s.linear(l.q, x), s.linear(l.k, x), s.linear(l.v, x)
	if l.qNorm != nil {
		q = s.transpose(s.rmsNorm(s.reshape(q, B, L, m.heads, -1), l.qNorm, m.cfg.RMSNormEps), 0, 2, 1, 3)
		k = s.transpose(s.rmsNorm(s.reshape(k, B, L, m.kvHead, -1), l.kNorm, m.cfg.RMSNormEps), 0, 2, 1, 3)
	} else {
		q = s.transpose(s.reshape(q, B, L, m.heads, -1), 0, 2, 1, 3)
		k = s.transpose(s.reshape(k, B, L, m.kvHead, -1), 0, 2, 1, 3)
	}
	v = s.transpose(s.reshape(v, B, L, m.kvHead, -1), 0, 2, 1, 3)
	offset := 0
	if c != nil {
		offset = c.offset
	}
	q = s.rope(m.rope, q, offset)
	k = s.rope(m.rope, k, offset)
	if c != nil {
		k, v = c.update(s, k, v)
	}
	out := s.sdpa(q, k, v, m.scale, mode, nil)
	out = s.reshape(s.transpose(out, 0, 2, 1, 3), B, L, -1)
	return s.linearToAll(l.o, out, t)
}
