package ckptgen

// The generated tokenizer's special tokens follow its 256 byte tokens.
const (
	bosTokenID = 256
	eosTokenID = 257
)

// Config returns config.json for s, in the form mlx-lm's loader reads:
// "quantization" at the top level, Kimi K2.5's language model under
// "text_config" with model_type kimi_k2 (a DeepSeek-V3), and Kimi K2.5's
// rope and router settings.
func (s Spec) Config() map[string]any {
	c := map[string]any{
		"model_type":          s.ModelType,
		"bos_token_id":        bosTokenID,
		"eos_token_id":        eosTokenID,
		"tie_word_embeddings": s.TieEmbeddings,
		"torch_dtype":         torchDtype(s.Dtype),
	}
	if s.Quant != nil {
		q := map[string]any{"group_size": s.Quant.GroupSize, "bits": s.Quant.Bits, "mode": "affine"}
		// Overrides sit beside the global fields, keyed by module path,
		// false for a module left unquantized, as mlx-lm writes them.
		for module, o := range s.QuantOverrides {
			if o == nil {
				q[module] = false
			} else {
				q[module] = map[string]any{"group_size": o.GroupSize, "bits": o.Bits, "mode": "affine"}
			}
		}
		c["quantization"] = q
		c["quantization_config"] = q
	}
	switch s.ModelType {
	case LlamaType, Qwen2Type, Qwen3Type:
		c["architectures"] = []string{map[string]string{LlamaType: "LlamaForCausalLM", Qwen2Type: "Qwen2ForCausalLM", Qwen3Type: "Qwen3ForCausalLM"}[s.ModelType]}
		for k, v := range map[string]any{
			"vocab_size":              s.Vocab,
			"hidden_size":             s.Hidden,
			"intermediate_size":       s.Intermediate,
			"num_hidden_layers":       s.Layers,
			"num_attention_heads":     s.Heads,
			"num_key_value_heads":     s.KVHeads,
			"head_dim":                s.HeadDim,
			"rms_norm_eps":            1e-5,
			"rope_theta":              500000.0,
			"max_position_embeddings": 131072,
			"hidden_act":              "silu",
		} {
			c[k] = v
		}
		if s.ModelType == LlamaType {
			// Llama 3.1's own rope scaling, so the llama3 frequencies are
			// exercised.
			c["rope_scaling"] = map[string]any{
				"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
				"high_freq_factor": 4.0, "original_max_position_embeddings": 8192,
			}
		} else {
			c["rope_theta"] = 1000000.0
		}
	case KimiK25Type:
		c["architectures"] = []string{"KimiK25ForConditionalGeneration"}
		c["text_config"] = map[string]any{
			"architectures":           []string{"DeepseekV3ForCausalLM"},
			"model_type":              "kimi_k2",
			"vocab_size":              s.Vocab,
			"hidden_size":             s.Hidden,
			"intermediate_size":       s.Intermediate,
			"moe_intermediate_size":   s.MoEIntermediate,
			"num_hidden_layers":       s.Layers,
			"num_attention_heads":     s.Heads,
			"num_key_value_heads":     s.Heads,
			"n_shared_experts":        s.SharedExperts,
			"n_routed_experts":        s.Experts,
			"num_experts_per_tok":     s.ActiveExperts,
			"routed_scaling_factor":   2.827,
			"kv_lora_rank":            s.KVLoRARank,
			"q_lora_rank":             s.QLoRARank,
			"qk_rope_head_dim":        s.QKRopeHeadDim,
			"qk_nope_head_dim":        s.QKNopeHeadDim,
			"v_head_dim":              s.VHeadDim,
			"topk_method":             "noaux_tc",
			"scoring_func":            "sigmoid",
			"norm_topk_prob":          true,
			"n_group":                 max(s.NGroup, 1),
			"topk_group":              max(s.TopKGroup, 1),
			"moe_layer_freq":          1,
			"first_k_dense_replace":   s.FirstDense,
			"max_position_embeddings": 262144,
			"rms_norm_eps":            1e-5,
			"rope_theta":              50000.0,
			"rope_scaling": map[string]any{
				"type":                             "yarn",
				"factor":                           64.0,
				"original_max_position_embeddings": 4096,
				"beta_fast":                        32.0,
				"beta_slow":                        1.0,
				"mscale":                           1.0,
				"mscale_all_dim":                   1.0,
			},
			"attention_bias": false,
			"hidden_act":     "silu",
			"bos_token_id":   bosTokenID,
			"eos_token_id":   eosTokenID,
		}
		if s.Vision {
			c["vision_config"] = map[string]any{
				"vt_num_hidden_layers": s.VisionLayers,
				"vt_hidden_size":       s.VisionHidden,
				"vt_intermediate_size": s.VisionIntermediate,
				"patch_size":           14,
				"merge_kernel_size":    []int{2, 2},
				"mm_hidden_size":       s.VisionHidden,
				"text_hidden_size":     s.Hidden,
				"mm_projector_type":    "patchmerger",
			}
		}
	}
	return c
}

func torchDtype(dt string) string {
	switch dt {
	case "F16":
		return "float16"
	case "F32":
		return "float32"
	}
	return "bfloat16"
}
