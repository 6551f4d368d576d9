package model

import (
	"fmt"
	"math"

	"github.com/mlxdist/mlxdist/mlx"
)

// deepseek runs mlx-lm's deepseek_v3 (Kimi K2.x): multi-head latent
// attention in mlx-lm's absorbed form, and mixture-of-experts layers with
// sigmoid routing after the first first_k_dense_replace dense ones.
//
// Attention: q = q_b(rms_norm(q_a(x), 1e-6)); kv_a_proj_with_mqa(x) splits
// into the latent (rms_norm, 1e-6) and the rotary key; both go into the
// cache, which is the same on every rank. Decoding one token (L = 1)
// attends in latent space (the query through embed_q, keys and values the
// latent, then unembed_out); a prefill (L > 1) expands keys and values
// from the latent first. The two paths round differently, so they branch
// exactly where mlx-lm's do. The rotary part enters as an additive mask of
// scores (q_pe·scale) @ k_peᵀ.
//
// MoE: the router x @ gateᵀ in float32, sigmoid, plus the correction bias
// for choosing; with n_group > 1 only the topk_group best groups (by the
// sum of their two best scores) compete; the experts' weights are the
// unbiased scores, normalised, times routed_scaling_factor. The routed
// experts run through gather_qmm (gather_mm unquantized), sorted by expert
// when there are 64 or more (token, expert) pairs; shared experts beside
// them.
//
// Under tensor parallelism each rank holds heads/N heads and 1/N of every
// MLP's and expert's intermediate size; every rank computes the same
// routing, and the layer all-sums twice: after o_proj and after the MLP.
type deepseek struct {
	cfg    *Config
	embed  *linear
	layers []dsLayer
	norm   *mlx.Array
	head   *linear
	rope   *rope
	heads  int // on this rank
	scale  float64
}

type dsLayer struct {
	inNorm, postNorm *mlx.Array

	qProj, qA, qB    *linear // qProj without a q LoRA
	qANorm           *mlx.Array
	kvA              *linear
	kvANorm          *mlx.Array
	embedQ, unembedO *linear
	o                *linear

	// dense MLP, or the shared experts of a MoE layer
	gate, up, down *linear
	moe            bool
	router         *mlx.Array
	corrBias       *mlx.Array
	swGate, swUp   *linear
	swDown         *linear
}

func newDeepSeek(s *scope, b *binder, n int) (*deepseek, error) {
	c := b.cfg
	if c.NumAttentionHeads%n != 0 {
		return nil, fmt.Errorf("model: %d ranks do not divide %d attention heads", n, c.NumAttentionHeads)
	}
	heads := c.NumAttentionHeads / n
	qHead := c.QKNopeHeadDim + c.QKRopeHeadDim
	m := &deepseek{cfg: c, heads: heads, scale: math.Pow(float64(qHead), -0.5)}
	if c.RopeScaling != nil {
		if mAll, _ := c.RopeScaling["mscale_all_dim"].(float64); mAll != 0 {
			if f, _ := c.RopeScaling["factor"].(float64); f > 1 {
				sc := 0.1*mAll*math.Log(f) + 1
				m.scale = m.scale * sc * sc
			}
		}
	}
	h := c.HiddenSize
	m.embed = b.linear("model.embed_tokens", h, c.VocabSize)
	m.layers = make([]dsLayer, c.NumHiddenLayers)
	for i := range m.layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		a := p + "self_attn."
		l := &m.layers[i]
		l.inNorm = b.norm(p+"input_layernorm", h)
		l.postNorm = b.norm(p+"post_attention_layernorm", h)
		if c.QLoRARank == 0 {
			l.qProj = b.linear(a+"q_proj", h, heads*qHead)
		} else {
			l.qA = b.linear(a+"q_a_proj", h, c.QLoRARank)
			l.qANorm = b.norm(a+"q_a_layernorm", c.QLoRARank)
			l.qB = b.linear(a+"q_b_proj", c.QLoRARank, heads*qHead)
		}
		l.kvA = b.linear(a+"kv_a_proj_with_mqa", h, c.KVLoRARank+c.QKRopeHeadDim)
		l.kvANorm = b.norm(a+"kv_a_layernorm", c.KVLoRARank)
		if _, ok := b.arrays[a+"kv_b_proj.weight"]; ok {
			b.fail("%skv_b_proj: convert the checkpoint with mlx_lm.convert first, which splits it into embed_q and unembed_out per head", a)
		}
		l.embedQ = b.linear(a+"embed_q", c.QKNopeHeadDim, heads, c.KVLoRARank)
		l.unembedO = b.linear(a+"unembed_out", c.KVLoRARank, heads, c.VHeadDim)
		l.o = b.linear(a+"o_proj", heads*c.VHeadDim, h)
		mp := p + "mlp."
		if !c.isMoE(i) {
			if c.IntermediateSize%n != 0 {
				return nil, fmt.Errorf("model: %d ranks do not divide intermediate_size %d", n, c.IntermediateSize)
			}
			inter := c.IntermediateSize / n
			l.gate = b.linear(mp+"gate_proj", h, inter)
			l.up = b.linear(mp+"up_proj", h, inter)
			l.down = b.linear(mp+"down_proj", inter, h)
			continue
		}
		l.moe = true
		e := c.NRoutedExperts
		if c.MoEIntermediateSize%n != 0 {
			return nil, fmt.Errorf("model: %d ranks do not divide moe_intermediate_size %d", n, c.MoEIntermediateSize)
		}
		inter := c.MoEIntermediateSize / n
		l.router = b.array(mp+"gate.weight", e, h)
		l.corrBias = b.array(mp+"gate.e_score_correction_bias", e)
		l.swGate = b.linear(mp+"switch_mlp.gate_proj", h, e, inter)
		l.swUp = b.linear(mp+"switch_mlp.up_proj", h, e, inter)
		l.swDown = b.linear(mp+"switch_mlp.down_proj", inter, e, h)
		if c.NSharedExperts > 0 {
			shared := c.MoEIntermediateSize * c.NSharedExperts
			if shared%n != 0 {
				return nil, fmt.Errorf("model: %d ranks do not divide the shared experts' intermediate size %d", n, shared)
			}
			l.gate = b.linear(mp+"shared_experts.gate_proj", h, shared/n)
			l.up = b.linear(mp+"shared_experts.up_proj", h, shared/n)
			l.down = b.linear(mp+"shared_experts.down_proj", shared/n, h)
		}
	}
	m.norm = b.norm("model.norm", h)
	m.head = b.linear("lm_head", h, c.VocabSize)
	if b.err != nil {
		return nil, b.err
	}
	r, err := newRope(s, c.QKRopeHeadDim, c.RopeTheta, true, c.RopeScaling, c.MaxPositionEmbeddings)
	if err != nil {
		return nil, err
	}
	m.rope = r
	return m, nil
}

func (m *deepseek) numLayers() int { return len(m.layers) }

func (m *deepseek) ropeFreqs() *mlx.Array { return m.rope.freqs }

func (m *deepseek) forward(s *scope, ids *mlx.Array, caches []*kvCache, t *tp) *mlx.Array {
	h := t.input(s, m.embed, ids)
	L := ids.Shape()[1]
	first, end := t.layers(len(m.layers))
	offset := 0
	if caches != nil {
		offset = caches[first].offset
	}
	// create_attention_mask(..., return_array=True): a boolean causal mask
	// for more than one token, none for one.
	var mask *mlx.Array
	if L > 1 {
		var linds *mlx.Array
		rinds := s.arange(0, offset+L)
		if offset != 0 {
			linds = s.arange(offset, offset+L)
		} else {
			linds = rinds
		}
		mask = s.greaterEqual(s.expandDims(linds, 1), s.expandDims(rinds, 0))
	}
	for i := first; i < end; i++ {
		var c *kvCache
		if caches != nil {
			c = caches[i]
		}
		l := &m.layers[i]
		r := m.attention(s, l, s.rmsNorm(h, l.inNorm, m.cfg.RMSNormEps), mask, c, t)
		h2 := s.add(h, r)
		xn := s.rmsNorm(h2, l.postNorm, m.cfg.RMSNormEps)
		if l.moe {
			r = m.moe(s, l, xn, t)
		} else {
			r = s.linearToAll(l.down, s.mul(s.silu(s.linear(l.gate, xn)), s.linear(l.up, xn)), t)
		}
		h = s.add(h2, r)
	}
	if out, done := t.passOn(s, h, caches, m.cfg.VocabSize); done {
		return out
	}
	return t.output(s, s.linear(m.head, s.rmsNorm(h, m.norm, m.cfg.RMSNormEps)))
}

// attnNormEps is the epsilon mlx-lm hard-codes for the two attention norms,
// whatever rms_norm_eps says.
const attnNormEps = 1e-6

func (m *deepseek) attention(s *scope, l *dsLayer, x, mask *mlx.Array, c *kvCache, t *tp) *mlx.Array {
	if s.err != nil {
		return nil
	}
	cfg := m.cfg
	shape := x.Shape()
	B, L := shape[0], shape[1]
	var q *mlx.Array
	if l.qProj != nil {
		q = s.linear(l.qProj, x)
	} else {
		q = s.linear(l.qB, s.rmsNorm(s.linear(l.qA, x), l.qANorm, attnNormEps))
	}
	q = s.transpose(s.reshape(q, B, L, m.heads, cfg.QKNopeHeadDim+cfg.QKRopeHeadDim), 0, 2, 1, 3)
	qNope, qPE := s.split2(q, cfg.QKNopeHeadDim, -1)
	latent, kPE := s.split2(s.linear(l.kvA, x), cfg.KVLoRARank, -1)
	kPE = s.transpose(s.reshape(kPE, B, L, 1, cfg.QKRopeHeadDim), 0, 2, 1, 3)
	latent = s.rmsNorm(latent, l.kvANorm, attnNormEps)
	offset := 0
	if c != nil {
		offset = c.offset
	}
	qPE = s.rope(m.rope, qPE, offset)
	kPE = s.rope(m.rope, kPE, offset)
	latent = s.expandDims(latent, 1)
	if c != nil {
		latent, kPE = c.update(s, latent, kPE)
	}
	scores := s.matmul(s.mul(qPE, s.like(m.scale, qPE)), s.swapaxes(kPE, -1, -2))
	if mask != nil && s.err == nil {
		scores = s.where(mask, scores, s.lowest(scores.Dtype()))
	}
	var k, v *mlx.Array
	if L == 1 {
		qNope = s.multiLinear(l.embedQ, qNope, true)
		k, v = latent, latent
	} else {
		k = s.multiLinear(l.embedQ, latent, false)
		v = s.multiLinear(l.unembedO, latent, true)
	}
	out := s.sdpa(qNope, k, v, m.scale, "array", scores)
	if L == 1 {
		out = s.multiLinear(l.unembedO, out, true)
	}
	out = s.reshape(s.transpose(out, 0, 2, 1, 3), B, L, -1)
	return s.linearToAll(l.o, out, t)
}

// route is mlx-lm's group_expert_select: the experts each token goes to
// and their weights.
func (m *deepseek) route(s *scope, l *dsLayer, x *mlx.Array) (inds, weights *mlx.Array) {
	if s.err != nil {
		return nil, nil
	}
	cfg := m.cfg
	gates := s.matmul(x, s.transpose(l.router))
	scores := s.sigmoid(s.astype(gates, mlx.Float32))
	orig := scores
	scores = s.add(scores, l.corrBias)
	if cfg.NGroup > 1 && s.err == nil {
		sh := scores.Shape()
		lead := sh[:len(sh)-1]
		grouped := append(append([]int(nil), lead...), cfg.NGroup, -1)
		scores = s.reshape(scores, grouped...)
		groupScores := s.sum(s.topk(scores, 2, -1), true, -1)
		k := cfg.NGroup - cfg.TopKGroup
		idx := s.argpartition(groupScores, k-1, -2)
		if s.err == nil {
			gs := idx.Shape()
			start := make([]int, len(gs))
			stop := append([]int(nil), gs...)
			stop[len(gs)-2] = k
			idx = s.slice(idx, start, stop)
		}
		scores = s.putAlong(scores, idx, s.f32(0), -2)
		scores = s.flatten(scores, -2, -1)
	}
	k := cfg.NumExpertsPerTok
	inds = s.lastSlice(s.argpartition(s.neg(scores), k-1, -1), 0, k)
	weights = s.takeAlong(orig, inds, -1)
	if k > 1 && cfg.NormTopKProb {
		weights = s.div(weights, s.sum(weights, true, -1))
	}
	weights = s.mul(weights, s.f32(cfg.RoutedScalingFactor))
	return inds, weights
}

func (m *deepseek) moe(s *scope, l *dsLayer, x *mlx.Array, t *tp) *mlx.Array {
	inds, weights := m.route(s, l, x)
	y := m.switchGLU(s, l, x, inds)
	if s.err != nil {
		return nil
	}
	dt := y.Dtype()
	y = s.astype(s.sum(s.mul(y, s.expandDims(weights, -1)), false, -2), dt)
	if l.gate != nil {
		y = s.add(y, s.linear(l.down, s.mul(s.silu(s.linear(l.gate, x)), s.linear(l.up, x))))
	}
	return t.allSum(s, y)
}

// gatherSortMin is SwitchGLU's threshold: from this many (token, expert)
// pairs on, tokens are sorted by expert before the gathered matmuls.
const gatherSortMin = 64

// switchGLU is mlx-lm's SwitchGLU: x [B, L, D] through the experts inds
// [B, L, k] to [B, L, k, D].
func (m *deepseek) switchGLU(s *scope, l *dsLayer, x, inds *mlx.Array) *mlx.Array {
	if s.err != nil {
		return nil
	}
	x = s.expandDims(x, -2, -3)
	idx := inds
	sorted := inds.Size() >= gatherSortMin
	var inv *mlx.Array
	if sorted {
		shape := inds.Shape()
		kk := shape[len(shape)-1]
		flat := s.flatten(inds, 0, -1)
		order := s.argsort(flat, 0)
		inv = s.argsort(order, 0)
		// order // M with M a Python int keeps order's uint32.
		m := s.do(func() (*mlx.Array, error) { return mlx.Scalar(uint32(kk)) })
		x = s.take(s.flatten(x, 0, -3), s.floorDiv(order, m), 0)
		idx = s.take(flat, order, 0)
	}
	up := s.switchLinear(l.swUp, x, idx, sorted)
	gate := s.switchLinear(l.swGate, x, idx, sorted)
	x = s.switchLinear(l.swDown, s.mul(s.silu(gate), up), idx, sorted)
	if sorted && s.err == nil {
		x = s.take(x, inv, 0)
		shape := append(append([]int(nil), inds.Shape()...), x.Shape()[1:]...)
		x = s.reshape(x, shape...)
	}
	return s.squeeze(x, -2)
}

// switchLinear is SwitchLinear / QuantizedSwitchLinear: each row of x
// through its expert.
func (s *scope) switchLinear(l *linear, x, idx *mlx.Array, sorted bool) *mlx.Array {
	if l.q != nil {
		return s.gatherQMM(x, l.w, l.scales, l.biases, idx, *l.q, sorted)
	}
	return s.gatherMM(x, s.swapaxes(l.w, -1, -2), idx, sorted)
}
