package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/mlxdist/mlxdist/mlx"
)

// Architectures this package runs, by config.json's model_type.
const (
	Llama      = "llama"
	Qwen2      = "qwen2"
	Qwen3      = "qwen3"
	DeepSeekV3 = "deepseek_v3"
	KimiK2     = "kimi_k2"
	KimiK25    = "kimi_k25"
)

// ErrUnsupported is matched by a *ConfigError for a model_type this package
// does not run.
var ErrUnsupported = errors.New("model: unsupported model type")

// ConfigError reports a config.json this package cannot run: a missing or
// malformed field, or a model type it does not know.
type ConfigError struct {
	Path  string // the config file
	Field string
	Err   error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("model: %s: %s: %v", e.Path, e.Field, e.Err)
}

// Unwrap gives the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Config is a model's config.json as mlx-lm reads it: the same fields with
// the same defaults (mlx-lm 0.32's ModelArgs of llama, qwen2, qwen3 and
// deepseek_v3), and the quantization mlx-lm's converter writes.
type Config struct {
	// ModelType is the top-level model_type; Arch the architecture that
	// runs it (llama, qwen2, qwen3 or deepseek_v3: kimi_k2 is a DeepSeek-V3,
	// kimi_k25 one under Prefix).
	ModelType string
	Arch      string
	// Prefix comes before every tensor name of the language model
	// ("language_model." for kimi_k25).
	Prefix string

	VocabSize             int
	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int
	HeadDim               int
	RMSNormEps            float64
	RopeTheta             float64
	RopeTraditional       bool
	RopeScaling           map[string]any
	MaxPositionEmbeddings int
	TieWordEmbeddings     bool
	AttentionBias         bool
	MLPBias               bool

	// DeepSeek-V3 (and Kimi K2.x).
	MoEIntermediateSize int
	NSharedExperts      int // 0: none
	NRoutedExperts      int // 0: no MoE layers
	RoutedScalingFactor float64
	KVLoRARank          int
	QLoRARank           int // 0: a plain q_proj
	QKRopeHeadDim       int
	QKNopeHeadDim       int
	VHeadDim            int
	TopKMethod          string
	ScoringFunc         string
	NormTopKProb        bool
	NGroup              int
	TopKGroup           int
	NumExpertsPerTok    int
	MoELayerFreq        int
	FirstKDenseReplace  int

	// Quant is the global quantization, nil for an unquantized model;
	// QuantOverrides gives modules, by path, one of their own (nil: not
	// quantized), as mlx-lm's mixed recipes write them.
	Quant          *mlx.Quantization
	QuantOverrides map[string]*mlx.Quantization

	// EOS lists the end-of-sequence token ids config.json names.
	EOS []int
}

// ReadConfig reads dir/config.json.
func ReadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w (a model directory holds config.json beside its safetensors files)", err)
	}
	return ParseConfig(path, b)
}

// fields reads a JSON object's members with defaults, remembering the first
// member of the wrong type.
type fields struct {
	m    map[string]json.RawMessage
	path string
	err  error
}

func (f *fields) fail(key string, err error) {
	if f.err == nil {
		f.err = &ConfigError{Path: f.path, Field: key, Err: err}
	}
}

func (f *fields) has(key string) bool {
	v, ok := f.m[key]
	return ok && string(v) != "null"
}

func (f *fields) get(key string, dst any) bool {
	if !f.has(key) {
		return false
	}
	if err := json.Unmarshal(f.m[key], dst); err != nil {
		f.fail(key, err)
		return false
	}
	return true
}

func (f *fields) int(key string, def int) int {
	var v float64
	if !f.get(key, &v) {
		return def
	}
	if v != float64(int(v)) {
		f.fail(key, fmt.Errorf("%v is not a whole number", v))
	}
	return int(v)
}

// required is int for a field mlx-lm's ModelArgs has no default for.
func (f *fields) required(key string) int {
	if !f.has(key) {
		f.fail(key, errors.New("missing"))
		return 0
	}
	return f.int(key, 0)
}

func (f *fields) float(key string, def float64) float64 {
	v := def
	f.get(key, &v)
	return v
}

func (f *fields) bool(key string, def bool) bool {
	v := def
	f.get(key, &v)
	return v
}

func (f *fields) string(key, def string) string {
	v := def
	f.get(key, &v)
	return v
}

// ParseConfig parses config.json's bytes; path names it in errors.
func ParseConfig(path string, b []byte) (*Config, error) {
	top := &fields{path: path}
	if err := json.Unmarshal(b, &top.m); err != nil {
		return nil, &ConfigError{Path: path, Field: "(file)", Err: err}
	}
	c := &Config{ModelType: top.string("model_type", "")}
	f := top
	switch c.ModelType {
	case Llama, Qwen2, Qwen3, DeepSeekV3:
		c.Arch = c.ModelType
	case KimiK2:
		c.Arch = DeepSeekV3
	case KimiK25:
		c.Arch = DeepSeekV3
		c.Prefix = "language_model."
		f = &fields{path: path}
		if !top.get("text_config", &f.m) {
			return nil, &ConfigError{Path: path, Field: "text_config", Err: errors.New("missing: kimi_k25 keeps its language model's settings there")}
		}
	default:
		return nil, &ConfigError{Path: path, Field: "model_type",
			Err: fmt.Errorf("%w %q: want one of %s, %s, %s, %s, %s, %s", ErrUnsupported, c.ModelType, Llama, Qwen2, Qwen3, DeepSeekV3, KimiK2, KimiK25)}
	}
	if c.Arch == DeepSeekV3 {
		c.deepseek(f)
	} else {
		c.llama(f)
	}
	c.quantization(top)
	c.EOS = eosIDs(top)
	if len(c.EOS) == 0 && f != top {
		c.EOS = eosIDs(f)
	}
	if f.err != nil {
		return nil, f.err
	}
	if top.err != nil {
		return nil, top.err
	}
	return c, c.validate(path)
}

// llama reads the Llama family's fields with mlx-lm's defaults.
func (c *Config) llama(f *fields) {
	c.HiddenSize = f.required("hidden_size")
	c.NumHiddenLayers = f.required("num_hidden_layers")
	c.IntermediateSize = f.required("intermediate_size")
	c.NumAttentionHeads = f.required("num_attention_heads")
	c.VocabSize = f.required("vocab_size")
	c.RMSNormEps = f.float("rms_norm_eps", 0)
	if !f.has("rms_norm_eps") {
		f.fail("rms_norm_eps", errors.New("missing"))
	}
	c.NumKeyValueHeads = f.int("num_key_value_heads", c.NumAttentionHeads)
	c.RopeScaling = map[string]any(nil)
	f.get("rope_scaling", &c.RopeScaling)
	c.MaxPositionEmbeddings = f.int("max_position_embeddings", 0)
	switch c.Arch {
	case Llama:
		c.HeadDim = f.int("head_dim", 0)
		c.RopeTheta = f.float("rope_theta", 10000)
		c.RopeTraditional = f.bool("rope_traditional", false)
		c.TieWordEmbeddings = f.bool("tie_word_embeddings", true)
		c.AttentionBias = f.bool("attention_bias", false)
		c.MLPBias = f.bool("mlp_bias", false)
	case Qwen2:
		// mlx-lm's qwen2 ignores head_dim: it is always hidden / heads.
		c.RopeTheta = f.float("rope_theta", 1000000)
		c.RopeTraditional = f.bool("rope_traditional", false)
		c.TieWordEmbeddings = f.bool("tie_word_embeddings", true)
		c.AttentionBias = true
	case Qwen3:
		c.HeadDim = f.required("head_dim")
		c.TieWordEmbeddings = f.bool("tie_word_embeddings", false)
		if !f.has("tie_word_embeddings") {
			f.fail("tie_word_embeddings", errors.New("missing"))
		}
		var rp map[string]any
		f.get("rope_parameters", &rp)
		c.RopeTheta = f.float("rope_theta", 0)
		if c.RopeTheta == 0 {
			if v, ok := rp["rope_theta"].(float64); ok {
				c.RopeTheta = v
			}
		}
		if c.RopeScaling == nil && rp != nil {
			c.RopeScaling = rp
		}
		if c.RopeTheta == 0 {
			f.fail("rope_theta", errors.New("missing"))
		}
	}
	if c.HeadDim == 0 && c.NumAttentionHeads > 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
}

// deepseek reads DeepSeek-V3's fields with mlx-lm's defaults.
func (c *Config) deepseek(f *fields) {
	c.VocabSize = f.int("vocab_size", 102400)
	c.HiddenSize = f.int("hidden_size", 4096)
	c.IntermediateSize = f.int("intermediate_size", 11008)
	c.MoEIntermediateSize = f.int("moe_intermediate_size", 1407)
	c.NumHiddenLayers = f.int("num_hidden_layers", 30)
	c.NumAttentionHeads = f.int("num_attention_heads", 32)
	c.NumKeyValueHeads = f.int("num_key_value_heads", 32)
	c.NSharedExperts = f.int("n_shared_experts", 0)
	c.NRoutedExperts = f.int("n_routed_experts", 0)
	c.RoutedScalingFactor = f.float("routed_scaling_factor", 1)
	c.KVLoRARank = f.int("kv_lora_rank", 512)
	// q_lora_rank: null means a plain q_proj, absent means mlx-lm's 1536.
	if _, present := f.m["q_lora_rank"]; present {
		c.QLoRARank = f.int("q_lora_rank", 0)
	} else {
		c.QLoRARank = 1536
	}
	c.QKRopeHeadDim = f.int("qk_rope_head_dim", 64)
	c.VHeadDim = f.int("v_head_dim", 128)
	c.QKNopeHeadDim = f.int("qk_nope_head_dim", 128)
	c.TopKMethod = f.string("topk_method", "noaux_tc")
	c.ScoringFunc = f.string("scoring_func", "sigmoid")
	c.NormTopKProb = f.bool("norm_topk_prob", true)
	c.NGroup = f.int("n_group", 1)
	c.TopKGroup = f.int("topk_group", 1)
	c.NumExpertsPerTok = f.int("num_experts_per_tok", 1)
	c.MoELayerFreq = f.int("moe_layer_freq", 1)
	c.FirstKDenseReplace = f.int("first_k_dense_replace", 0)
	c.MaxPositionEmbeddings = f.int("max_position_embeddings", 2048)
	c.RMSNormEps = f.float("rms_norm_eps", 1e-6)
	c.RopeTheta = f.float("rope_theta", 10000)
	f.get("rope_scaling", &c.RopeScaling)
	c.AttentionBias = f.bool("attention_bias", false)
	c.HeadDim = c.QKNopeHeadDim + c.QKRopeHeadDim
}

// quantization reads "quantization": group_size and bits, and every other
// member a module path mapped to its own settings or false.
func (c *Config) quantization(f *fields) {
	var q map[string]json.RawMessage
	if !f.get("quantization", &q) {
		return
	}
	global := func(key string) int {
		var v int
		if err := json.Unmarshal(q[key], &v); err != nil || v <= 0 {
			f.fail("quantization."+key, fmt.Errorf("%s is not a positive whole number", q[key]))
		}
		return v
	}
	c.Quant = &mlx.Quantization{GroupSize: global("group_size"), Bits: global("bits")}
	for k, v := range q {
		switch k {
		case "group_size", "bits":
			continue
		case "mode":
			var mode string
			if json.Unmarshal(v, &mode) != nil || mode != "affine" {
				f.fail("quantization.mode", fmt.Errorf("%s: only affine quantization runs here", v))
			}
			continue
		}
		if c.QuantOverrides == nil {
			c.QuantOverrides = map[string]*mlx.Quantization{}
		}
		if string(v) == "false" {
			c.QuantOverrides[k] = nil
			continue
		}
		var o struct {
			GroupSize int    `json:"group_size"`
			Bits      int    `json:"bits"`
			Mode      string `json:"mode"`
		}
		if err := json.Unmarshal(v, &o); err != nil || o.GroupSize <= 0 || o.Bits <= 0 || (o.Mode != "" && o.Mode != "affine") {
			f.fail("quantization."+k, fmt.Errorf("%s: want false or {group_size, bits} of affine quantization", v))
			continue
		}
		c.QuantOverrides[k] = &mlx.Quantization{GroupSize: o.GroupSize, Bits: o.Bits}
	}
}

func eosIDs(f *fields) []int {
	var one int
	if f.has("eos_token_id") && json.Unmarshal(f.m["eos_token_id"], &one) == nil {
		return []int{one}
	}
	var many []int
	f.get("eos_token_id", &many)
	sort.Ints(many)
	return many
}

func (c *Config) validate(path string) error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Path: path, Field: field, Err: fmt.Errorf(format, args...)}
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"num_hidden_layers", c.NumHiddenLayers},
		{"num_attention_heads", c.NumAttentionHeads}, {"num_key_value_heads", c.NumKeyValueHeads}} {
		if v.n <= 0 {
			return bad(v.name, "is %d, must be positive", v.n)
		}
	}
	if c.NumAttentionHeads%c.NumKeyValueHeads != 0 {
		return bad("num_key_value_heads", "%d does not divide num_attention_heads %d", c.NumKeyValueHeads, c.NumAttentionHeads)
	}
	if c.Arch == DeepSeekV3 {
		if c.TopKMethod != "noaux_tc" {
			return bad("topk_method", "%q: mlx-lm's deepseek_v3 runs noaux_tc only", c.TopKMethod)
		}
		if c.NRoutedExperts > 0 {
			if c.NGroup <= 0 || c.NRoutedExperts%c.NGroup != 0 {
				return bad("n_group", "%d does not divide n_routed_experts %d", c.NGroup, c.NRoutedExperts)
			}
			if c.NumExpertsPerTok <= 0 || c.NumExpertsPerTok > c.NRoutedExperts {
				return bad("num_experts_per_tok", "is %d, outside 1..%d experts", c.NumExpertsPerTok, c.NRoutedExperts)
			}
			if c.MoELayerFreq <= 0 {
				return bad("moe_layer_freq", "is %d, must be positive", c.MoELayerFreq)
			}
		}
	}
	return nil
}

// moduleQuant returns the quantization config.json gives module (its full
// path, Prefix included, as mlx-lm names it): its override, or the global
// one.
func (c *Config) moduleQuant(module string) (q *mlx.Quantization, explicit bool) {
	if o, ok := c.QuantOverrides[module]; ok {
		return o, true
	}
	return c.Quant, false
}

// isMoE reports whether layer i holds routed experts, as mlx-lm decides.
func (c *Config) isMoE(i int) bool {
	return c.NRoutedExperts > 0 && i >= c.FirstKDenseReplace && i%c.MoELayerFreq == 0
}
