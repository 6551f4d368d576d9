package shard

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

func TestLayerIndexFindsTheLayerWhateverThePrefix(t *testing.T) {
	for name, want := range map[string]int{
		"model.layers.17.mlp.down_proj.weight":                    17,
		"language_model.model.layers.3.self_attn.q_b_proj.scales": 3,
		"layers.0.attention.wq.weight":                            0,
		"model.embed_tokens.weight":                               -1,
		"lm_head.weight":                                          -1,
		"model.mylayers.2.weight":                                 -1,
		"vision_tower.encoder.blocks.0.attn.qkv.weight":           -1,
	} {
		assert.Equal(t, want, LayerIndex(name), name)
	}
}

func TestDefaultSectionsPutEmbeddingsBeforeAndTowersApart(t *testing.T) {
	for name, want := range map[string]Section{
		"language_model.model.embed_tokens.weight":       {Before, -1, "before"},
		"language_model.model.layers.60.mlp.gate.weight": {Block, 60, "layers.60"},
		"language_model.model.norm.weight":               {After, -1, "after"},
		"language_model.lm_head.scales":                  {After, -1, "after"},
		"vision_tower.encoder.blocks.3.mlp.fc1.weight":   {Tower, -1, "vision_tower"},
		"mm_projector.proj.0.weight":                     {Tower, -1, "mm_projector"},
		"multi_modal_projector.linear_1.weight":          {Tower, -1, "multi_modal_projector"},
	} {
		assert.Equal(t, want, DefaultSections(name), name)
	}
	f := SectionsByPattern(regexp.MustCompile(`\.h\.(\d+)\.`))
	assert.Equal(t, Section{Block, 5, "layers.5"}, f("transformer.h.5.attn.c_attn.weight"))
	assert.Equal(t, Section{Before, -1, "before"}, f("transformer.wte.weight"))
}

func info(name string, dt safetensors.Dtype, shape ...int64) Tensor {
	return Tensor{Name: name, Dtype: dt, Shape: shape}
}

func TestBuiltInRulesShardAsMLXLMDoes(t *testing.T) {
	const p = "language_model.model.layers.3."
	ds := DeepSeekV3Rules(64)
	cases := []struct {
		rules  *RuleSet
		t      Tensor
		action Action
		axis   int
	}{
		{ds, info(p+"self_attn.q_b_proj.weight", safetensors.U32, 64*192, 1536/8), AllToSharded, 0},
		{ds, info(p+"self_attn.q_b_proj.scales", safetensors.BF16, 64*192, 1536/64), AllToSharded, 0},
		{ds, info(p+"self_attn.kv_b_proj.weight", safetensors.U32, 64*256, 512/8), SplitAxis, 0},
		{ds, info(p+"self_attn.embed_q.weight", safetensors.U32, 64, 512, 128/8), SplitAxis, 0},
		{ds, info(p+"self_attn.unembed_out.biases", safetensors.BF16, 64, 128, 512/64), SplitAxis, 0},
		{ds, info(p+"self_attn.o_proj.weight", safetensors.U32, 7168, 64*128/8), ShardedToAll, 1},
		{ds, info(p+"self_attn.o_proj.biases", safetensors.BF16, 7168, 64*128/64), ShardedToAll, 1},
		{ds, info(p+"self_attn.q_a_proj.weight", safetensors.U32, 1536, 7168/8), Replicate, -1},
		{ds, info(p+"self_attn.kv_a_proj_with_mqa.weight", safetensors.U32, 576, 7168/8), Replicate, -1},
		{ds, info(p+"self_attn.kv_a_layernorm.weight", safetensors.BF16, 512), Replicate, -1},
		{ds, info(p+"mlp.switch_mlp.gate_proj.weight", safetensors.U32, 384, 2048, 7168/8), AllToSharded, 1},
		{ds, info(p+"mlp.switch_mlp.down_proj.scales", safetensors.BF16, 384, 7168, 2048/64), ShardedToAll, 2},
		{ds, info(p+"mlp.shared_experts.up_proj.weight", safetensors.U32, 2048, 7168/8), AllToSharded, 0},
		{ds, info(p+"mlp.down_proj.weight", safetensors.U32, 7168, 18432/8), ShardedToAll, 1},
		{ds, info(p+"mlp.gate.weight", safetensors.BF16, 384, 7168), Replicate, -1},
		{ds, info(p+"mlp.gate.e_score_correction_bias", safetensors.F32, 384), Replicate, -1},
		{ds, info("language_model.model.embed_tokens.weight", safetensors.U32, 163840, 7168/8), Replicate, -1},
		{ds, info("language_model.lm_head.weight", safetensors.U32, 163840, 7168/8), Replicate, -1},
		{ds, info("vision_tower.encoder.blocks.0.mlp.down_proj.weight", safetensors.BF16, 1152, 4304), Replicate, -1},
		{LlamaRules(32, 8), info("model.layers.0.self_attn.k_proj.weight", safetensors.BF16, 1024, 4096), AllToSharded, 0},
		{LlamaRules(32, 8), info("model.layers.0.self_attn.k_proj.bias", safetensors.BF16, 1024), AllToSharded, 0},
		{LlamaRules(32, 8), info("model.layers.0.self_attn.o_proj.bias", safetensors.BF16, 4096), ShardedToAll, -1},
		{LlamaRules(32, 8), info("model.layers.0.mlp.down_proj.weight", safetensors.BF16, 4096, 14336), ShardedToAll, 1},
		{LlamaRules(32, 8), info("model.layers.0.self_attn.q_norm.weight", safetensors.BF16, 128), Replicate, -1},
	}
	for _, c := range cases {
		s, err := c.rules.Resolve(c.t, 2)
		require.NoError(t, err, c.t.Name)
		assert.Equal(t, c.action, s.Action, c.t.Name)
		assert.Equal(t, c.axis, s.Axis, c.t.Name)
	}
}

func TestSplitsThatCannotDivideAreRefusedNamingTheTensor(t *testing.T) {
	cases := []struct {
		name   string
		rules  *RuleSet
		t      Tensor
		n      int
		detail string
	}{
		{"an axis that does not divide", LlamaRules(0, 0), info("model.layers.0.mlp.up_proj.weight", safetensors.BF16, 30, 8), 4, "does not divide by 4"},
		{"key-value heads that do not divide (GQA)", LlamaRules(32, 2), info("model.layers.0.self_attn.k_proj.weight", safetensors.BF16, 256, 64), 4, "2 heads"},
		{"quantization groups that do not divide", DeepSeekV3Rules(0), info("m.layers.1.self_attn.o_proj.scales", safetensors.BF16, 64, 2), 4, "quantization groups"},
		{"a fused segment that does not divide", &RuleSet{Rules: []Rule{{Pattern: regexp.MustCompile("qkv"), Action: AllToSharded, Segments: []int64{4, 1, 1}}}},
			info("layers.0.qkv.weight", safetensors.BF16, 6, 8), 2, "segment 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewPlan([]Tensor{c.t}, PlanOptions{WorldSize: c.n, Rules: c.rules})
			var se *ShardError
			require.ErrorAs(t, err, &se)
			assert.ErrorIs(t, err, ErrShard)
			assert.Equal(t, c.t.Name, se.Tensor)
			assert.Equal(t, c.n, se.N)
			assert.Contains(t, se.Error(), c.detail)
		})
	}
}

func TestAFusedProjectionKeepsItsPieceOfEverySegment(t *testing.T) {
	rules := &RuleSet{Rules: []Rule{{Pattern: regexp.MustCompile("qkv"), Action: AllToSharded, Segments: []int64{2, 1, 1}}}}
	p, err := NewPlan([]Tensor{info("layers.0.qkv.weight", safetensors.U8, 8, 1)}, PlanOptions{WorldSize: 2, Rank: 1, Rules: rules})
	require.NoError(t, err)
	tp := p.Sections[0].Tensors[0]
	assert.Equal(t, []int64{0, 4, 6, 8}, tp.Split.Bounds)
	var runs [][2]int64
	for r := range p.Ranges(&tp) {
		runs = append(runs, [2]int64{r.Offset, r.Length})
	}
	// Rows 2-3 of q, row 5 of k, row 7 of v.
	assert.Equal(t, [][2]int64{{2, 2}, {5, 1}, {7, 1}}, runs)
}

func TestThePlanOfADescribedModelPrintsAsJSONAndATable(t *testing.T) {
	var ts []Tensor
	ts = append(ts, info("model.embed_tokens.weight", safetensors.BF16, 1000, 64))
	for _, n := range []string{"0", "1"} {
		ts = append(ts, info("model.layers."+n+".mlp.up_proj.weight", safetensors.BF16, 256, 64),
			info("model.layers."+n+".mlp.down_proj.weight", safetensors.BF16, 64, 256))
	}
	for _, s := range []Strategy{Direct, EvalShardEval, ChunkedEval} {
		p, err := NewPlan(ts, PlanOptions{WorldSize: 2, Strategy: s})
		require.NoError(t, err)
		assert.Equal(t, []string{"before", "layers.0", "layers.1"}, []string{p.Sections[0].Name, p.Sections[1].Name, p.Sections[2].Name})
		const embed, layer = 1000 * 64 * 2, 2 * 256 * 64 * 2
		switch s {
		case Direct:
			assert.Equal(t, int64(embed+layer), p.Resident)
			assert.Equal(t, int64(embed+layer), p.Peak)
			assert.Equal(t, int64(embed+layer), p.Read)
		case EvalShardEval:
			assert.Equal(t, int64(embed+layer/2+layer+layer/2), p.Peak)
			assert.Equal(t, int64(embed+2*layer), p.Read)
		case ChunkedEval:
			assert.Equal(t, int64(embed+2*layer), p.Peak)
		}
		b, err := p.JSON()
		require.NoError(t, err)
		var back map[string]any
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, s.String(), back["strategy"])
		var tab bytes.Buffer
		require.NoError(t, p.WriteTable(&tab))
		assert.Contains(t, tab.String(), "layers.1")
		assert.Contains(t, tab.String(), "peak "+"0.")
	}
}
