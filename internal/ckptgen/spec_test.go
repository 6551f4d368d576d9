package ckptgen

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kimiFullBytes is the tensor total of KimiK25(), vision tower included.
const kimiFullBytes = 578_535_848_928

func TestKimiK25FullSizeHasTheModelsStructure(t *testing.T) {
	s := KimiK25()
	ts := s.Tensors()
	require.NotEmpty(t, ts)
	byName := map[string]TensorDesc{}
	layers := map[int]bool{}
	dense, moe := 0, 0
	for _, d := range ts {
		byName[d.Name] = d
		rest, ok := strings.CutPrefix(d.Name, "language_model.model.layers.")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest[:strings.IndexByte(rest, '.')])
		require.NoError(t, err)
		layers[n] = true
		switch {
		case strings.HasSuffix(d.Name, ".mlp.gate_proj.weight"):
			dense++
		case strings.HasSuffix(d.Name, ".mlp.switch_mlp.gate_proj.weight"):
			moe++
			assert.Equal(t, []int64{384, 2048, 7168 * 4 / 32}, d.Shape, d.Name)
		}
	}
	assert.Len(t, layers, 61)
	assert.Equal(t, 1, dense, "dense layers")
	assert.Equal(t, 60, moe, "MoE layers")

	for name, want := range map[string]TensorDesc{
		"language_model.model.embed_tokens.weight":                          {Dtype: "U32", Shape: []int64{163840, 896}},
		"language_model.model.embed_tokens.scales":                          {Dtype: "BF16", Shape: []int64{163840, 112}},
		"language_model.lm_head.biases":                                     {Dtype: "BF16", Shape: []int64{163840, 112}},
		"language_model.model.layers.0.mlp.down_proj.weight":                {Dtype: "U32", Shape: []int64{7168, 18432 / 8}},
		"language_model.model.layers.5.self_attn.q_b_proj.weight":           {Dtype: "U32", Shape: []int64{64 * 192, 1536 / 8}},
		"language_model.model.layers.5.self_attn.kv_a_proj_with_mqa.weight": {Dtype: "U32", Shape: []int64{576, 896}},
		"language_model.model.layers.5.self_attn.embed_q.weight":            {Dtype: "U32", Shape: []int64{64, 512, 16}},
		"language_model.model.layers.5.self_attn.unembed_out.scales":        {Dtype: "BF16", Shape: []int64{64, 128, 8}},
		"language_model.model.layers.5.self_attn.o_proj.weight":             {Dtype: "U32", Shape: []int64{7168, 64 * 128 / 8}},
		"language_model.model.layers.60.mlp.gate.weight":                    {Dtype: "BF16", Shape: []int64{384, 7168}},
		"language_model.model.layers.60.mlp.gate.e_score_correction_bias":   {Dtype: "F32", Shape: []int64{384}},
		"language_model.model.layers.60.mlp.switch_mlp.down_proj.scales":    {Dtype: "BF16", Shape: []int64{384, 7168, 32}},
		"language_model.model.layers.60.mlp.shared_experts.up_proj.weight":  {Dtype: "U32", Shape: []int64{2048, 896}},
		"language_model.model.norm.weight":                                  {Dtype: "BF16", Shape: []int64{7168}},
		"vision_tower.encoder.blocks.26.wqkv.weight":                        {Dtype: "BF16", Shape: []int64{3456, 1152}},
		"mm_projector.proj.2.weight":                                        {Dtype: "BF16", Shape: []int64{7168, 4608}},
	} {
		got, ok := byName[name]
		if assert.True(t, ok, "missing %s", name) {
			assert.Equal(t, want.Dtype, got.Dtype, name)
			assert.Equal(t, want.Shape, got.Shape, name)
		}
	}
	assert.NotContains(t, byName, "language_model.model.layers.0.mlp.gate.weight", "the dense layer has no router")
	assert.NotContains(t, byName, "language_model.model.layers.61.input_layernorm.weight")

	sum := s.Sum(ts)
	t.Logf("Kimi K2.5: %d tensors, %d bytes, %d parameters", sum.Tensors, sum.Bytes, sum.Params)
	assert.Equal(t, 2893, sum.Tensors)
	assert.Equal(t, int64(kimiFullBytes), sum.Bytes)
	assert.Greater(t, sum.Bytes, int64(550e9))
	assert.Less(t, sum.Bytes, int64(650e9))
	assert.InDelta(t, 1.03e12, float64(sum.Params), 0.01e12, "Kimi K2.5 has 1.03 T parameters")
}

func TestTensorBytesMatchDtypeAndShape(t *testing.T) {
	for _, s := range []Spec{KimiK25(), Llama()} {
		for _, d := range s.Tensors() {
			n := dtypeSize(d.Dtype)
			for _, v := range d.Shape {
				n *= v
			}
			require.Equal(t, n, d.Bytes, d.Name)
		}
	}
}

func TestScaleKeepsSpecsValidAndShardable(t *testing.T) {
	for _, tc := range []struct {
		name string
		base Spec
	}{
		{"Kimi K2.5 scales", KimiK25()},
		{"Llama scales", Llama()},
	} {
		for _, f := range []float64{1, 0.5, 1.0 / 8, 1.0 / 16, 1.0 / 32, 1.0 / 1000} {
			s := tc.base.Scale(f)
			t.Run(tc.name+" by "+strconv.FormatFloat(f, 'g', 4, 64), func(t *testing.T) {
				require.NoError(t, s.Validate())
				g := int64(s.Quant.GroupSize)
				assert.Zero(t, s.Hidden%int(g), "hidden %d", s.Hidden)
				assert.Zero(t, s.Heads%2, "heads %d", s.Heads)
				assert.Zero(t, s.Intermediate%int(2*g), "intermediate %d splits in two groups-aligned halves", s.Intermediate)
				assert.GreaterOrEqual(t, s.Vocab, minVocab)
				assert.Equal(t, tc.base.Layers, s.Layers, "layers are not scaled")
				assert.Equal(t, tc.base.Experts, s.Experts, "experts are not scaled")
				for _, d := range s.Tensors() {
					// Every matrix but the router is quantized, as in the
					// full-size model.
					if strings.HasSuffix(d.Name, "proj.weight") || strings.HasSuffix(d.Name, "embed_tokens.weight") ||
						strings.HasSuffix(d.Name, "lm_head.weight") || strings.HasSuffix(d.Name, "embed_q.weight") {
						if !strings.HasPrefix(d.Name, "vision_tower.") && !strings.HasPrefix(d.Name, "mm_projector.") {
							assert.Equal(t, "U32", d.Dtype, d.Name)
						}
					}
				}
			})
		}
	}
}

func TestScaledIntermediateIsGroupAligned(t *testing.T) {
	// Tensor parallelism over two ranks splits the input of down_proj; both
	// halves must stay whole groups.
	s := KimiK25().Scale(1.0 / 16)
	assert.Zero(t, (s.MoEIntermediate/s.Quant.GroupSize)%2, "moe intermediate %d", s.MoEIntermediate)
}

func TestValidateRejectsInconsistentSpecs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"an unknown model type is rejected", func(s *Spec) { s.ModelType = "gpt" }, "model_type"},
		{"more active experts than experts are rejected", func(s *Spec) { s.Experts = 4 }, "active_experts"},
		{"zero shard files are rejected", func(s *Spec) { s.Files = 0 }, "files"},
		{"an odd rope dimension is rejected", func(s *Spec) { s.QKRopeHeadDim = 7 }, "qk_rope_head_dim"},
		{"a group size MLX lacks is rejected", func(s *Spec) { s.Quant = &Quantization{GroupSize: 48, Bits: 4} }, "quantization.group_size"},
		{"a dtype other than a float is rejected", func(s *Spec) { s.Dtype = "I8" }, "dtype"},
		{"more dense layers than layers are rejected", func(s *Spec) { s.FirstDense = 62 }, "first_k_dense_replace"},
		{"a vocabulary smaller than the tokenizer is rejected", func(s *Spec) { s.Vocab = 100 }, "vocab"},
		{"expert groups that do not divide the experts are rejected", func(s *Spec) { s.NGroup = 5 }, "n_group"},
		{"more chosen groups than groups are rejected", func(s *Spec) { s.NGroup, s.TopKGroup = 8, 9 }, "topk_group"},
		{"an override at an unknown bit width is rejected", func(s *Spec) {
			s.QuantOverrides = map[string]*Quantization{"language_model.lm_head": {GroupSize: 64, Bits: 5}}
		}, "quantization.bits"},
		{"overrides without a global quantization are rejected", func(s *Spec) {
			s.Quant, s.QuantOverrides = nil, map[string]*Quantization{"language_model.lm_head": nil}
		}, "quantization_overrides"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := KimiK25()
			tc.edit(&s)
			err := s.Validate()
			var se *SpecError
			require.True(t, errors.As(err, &se), "got %v", err)
			assert.Equal(t, tc.field, se.Field)
			assert.Nil(t, s.Tensors())
		})
	}
	t.Run("llama kv heads must divide heads", func(t *testing.T) {
		s := Llama()
		s.KVHeads = 5
		var se *SpecError
		require.ErrorAs(t, s.Validate(), &se)
		assert.Equal(t, "kv_heads", se.Field)
	})
}

func TestLayoutSplitsTensorsIntoBalancedRuns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spec  Spec
		files int
	}{
		{"Kimi K2.5 in 182 files", KimiK25(), 182},
		{"Kimi K2.5 in 1 file", KimiK25(), 1},
		{"a small Llama in 7 files", Llama().Scale(1.0 / 8), 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			s.Files = tc.files
			layout, err := s.Layout()
			require.NoError(t, err)
			require.Len(t, layout, tc.files)
			var flat []TensorDesc
			var largest, biggestTensor int64
			for _, f := range layout {
				require.NotEmpty(t, f)
				var n int64
				for _, d := range f {
					n += d.Bytes
					biggestTensor = max(biggestTensor, d.Bytes)
				}
				largest = max(largest, n)
				flat = append(flat, f...)
			}
			all := s.Tensors()
			assert.Equal(t, all, flat, "files are consecutive runs in tensor order")
			total := s.Sum(all).Bytes
			assert.LessOrEqual(t, largest, total/int64(tc.files)+biggestTensor, "no file exceeds its share by more than one tensor")
		})
	}
	t.Run("more files than tensors are rejected", func(t *testing.T) {
		s := Llama().Scale(1.0 / 8)
		s.Layers = 1
		s.Files = 100
		_, err := s.Layout()
		var se *SpecError
		assert.ErrorAs(t, err, &se)
	})
}

func TestHashChangesWithSpecAndSeed(t *testing.T) {
	a := KimiK25()
	b := KimiK25()
	b.Files = 10
	assert.Equal(t, a.Hash(1), KimiK25().Hash(1))
	assert.NotEqual(t, a.Hash(1), a.Hash(2))
	assert.NotEqual(t, a.Hash(1), b.Hash(1))
}
