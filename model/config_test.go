package model

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
)

func TestParseConfigReadsFieldsWithMLXLMsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		json  string
		check func(t *testing.T, c *Config)
	}{
		{"a llama without head_dim or kv heads takes hidden/heads and every head", `{"model_type":"llama","hidden_size":256,
			"num_hidden_layers":2,"intermediate_size":512,"num_attention_heads":8,"rms_norm_eps":1e-5,"vocab_size":1000}`,
			func(t *testing.T, c *Config) {
				assert.Equal(t, 32, c.HeadDim)
				assert.Equal(t, 8, c.NumKeyValueHeads)
				assert.Equal(t, 10000.0, c.RopeTheta)
				assert.True(t, c.TieWordEmbeddings, "llama ties embeddings by default")
				assert.Nil(t, c.Quant)
			}},
		{"qwen2 always has q/k/v biases and ignores head_dim", `{"model_type":"qwen2","hidden_size":256,"head_dim":64,
			"num_hidden_layers":2,"intermediate_size":512,"num_attention_heads":8,"num_key_value_heads":2,"rms_norm_eps":1e-6,"vocab_size":1000}`,
			func(t *testing.T, c *Config) {
				assert.True(t, c.AttentionBias)
				assert.Equal(t, 32, c.HeadDim)
				assert.Equal(t, 1000000.0, c.RopeTheta)
			}},
		{"qwen3 takes rope_theta from rope_parameters", `{"model_type":"qwen3","hidden_size":256,"head_dim":64,"tie_word_embeddings":false,
			"num_hidden_layers":2,"intermediate_size":512,"num_attention_heads":8,"num_key_value_heads":2,"rms_norm_eps":1e-6,
			"vocab_size":1000,"max_position_embeddings":4096,"rope_parameters":{"rope_theta":5e6,"rope_type":"default"}}`,
			func(t *testing.T, c *Config) {
				assert.Equal(t, 5e6, c.RopeTheta)
				assert.Equal(t, 64, c.HeadDim)
				assert.False(t, c.TieWordEmbeddings)
			}},
		{"kimi k2.5 is a deepseek_v3 under language_model. with its text_config", `{"model_type":"kimi_k25","eos_token_id":[7,3],
			"text_config":{"model_type":"kimi_k2","hidden_size":128,"num_hidden_layers":3,"n_routed_experts":8,"q_lora_rank":null,"n_group":4,"topk_group":2},
			"quantization":{"group_size":64,"bits":4,"language_model.lm_head":false,"language_model.model.layers.1.mlp.switch_mlp.down_proj":{"group_size":32,"bits":8}}}`,
			func(t *testing.T, c *Config) {
				assert.Equal(t, DeepSeekV3, c.Arch)
				assert.Equal(t, "language_model.", c.Prefix)
				assert.Equal(t, 0, c.QLoRARank, "a null q_lora_rank means a plain q_proj")
				assert.Equal(t, 512, c.KVLoRARank, "mlx-lm's default")
				assert.Equal(t, 1e-6, c.RMSNormEps)
				assert.Equal(t, 4, c.NGroup)
				assert.Equal(t, []int{3, 7}, c.EOS)
				assert.Equal(t, &mlx.Quantization{GroupSize: 64, Bits: 4}, c.Quant)
				q, explicit := c.moduleQuant("language_model.lm_head")
				assert.True(t, explicit)
				assert.Nil(t, q, "false leaves a module unquantized")
				q, _ = c.moduleQuant("language_model.model.layers.1.mlp.switch_mlp.down_proj")
				assert.Equal(t, &mlx.Quantization{GroupSize: 32, Bits: 8}, q)
				assert.True(t, c.isMoE(1))
			}},
		{"deepseek_v3 without q_lora_rank takes mlx-lm's 1536", `{"model_type":"deepseek_v3"}`,
			func(t *testing.T, c *Config) {
				assert.Equal(t, 1536, c.QLoRARank)
				assert.Equal(t, 192, c.HeadDim)
				assert.False(t, c.isMoE(0), "no routed experts: dense")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig("config.json", []byte(tc.json))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestParseConfigRejectsWhatItCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name, json, field string
		is                error
	}{
		{"an unknown model type names the ones it knows", `{"model_type":"gpt2"}`, "model_type", ErrUnsupported},
		{"a llama without rms_norm_eps is rejected", `{"model_type":"llama","hidden_size":256,"num_hidden_layers":2,
			"intermediate_size":512,"num_attention_heads":8,"vocab_size":1000}`, "rms_norm_eps", nil},
		{"kimi k2.5 without text_config is rejected", `{"model_type":"kimi_k25"}`, "text_config", nil},
		{"kv heads that do not divide the heads are rejected", `{"model_type":"llama","hidden_size":256,"num_hidden_layers":2,
			"intermediate_size":512,"num_attention_heads":8,"num_key_value_heads":3,"rms_norm_eps":1e-5,"vocab_size":1000}`, "num_key_value_heads", nil},
		{"a non-affine quantization is rejected", `{"model_type":"deepseek_v3","quantization":{"group_size":32,"bits":4,"mode":"mxfp4"}}`, "quantization.mode", nil},
		{"a malformed module override is rejected", `{"model_type":"deepseek_v3","quantization":{"group_size":32,"bits":4,"lm_head":"yes"}}`, "quantization.lm_head", nil},
		{"groups that do not divide the experts are rejected", `{"model_type":"deepseek_v3","n_routed_experts":8,"n_group":3}`, "n_group", nil},
		{"a field of the wrong type is rejected", `{"model_type":"llama","hidden_size":"big"}`, "hidden_size", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("config.json", []byte(tc.json))
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "got %v", err)
			assert.Equal(t, tc.field, ce.Field, "%v", err)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
		})
	}
}
