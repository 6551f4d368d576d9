package shard

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mlxdist/mlxdist/safetensors"
)

// Action says how a rule shards the tensors it matches.
type Action int

const (
	// Replicate gives every rank the whole tensor.
	Replicate Action = iota
	// AllToSharded splits a linear layer's outputs (mlx's "all-to-sharded",
	// no communication): weight, scales and biases along axis
	// max(ndim-2, 0) — the output rows, axis 1 of stacked experts
	// [E, out, in] — and a bias along its last axis.
	AllToSharded
	// ShardedToAll splits a linear layer's inputs (mlx's "sharded-to-all",
	// followed by an all-sum): weight, scales and biases along the last
	// axis; a bias is replicated, since it must be added once.
	ShardedToAll
	// SplitAxis splits every tensor the rule matches along Rule.Axis: a
	// per-head split of [heads, ...] tensors, for instance.
	SplitAxis
)

func (a Action) String() string {
	switch a {
	case Replicate:
		return "replicate"
	case AllToSharded:
		return "all-to-sharded"
	case ShardedToAll:
		return "sharded-to-all"
	case SplitAxis:
		return "split-axis"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// MarshalText writes the action's name in JSON plans.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// A Rule maps tensor names to a sharding. Rules are data: a model's rule
// set is a list of them, the first whose Pattern matches a name wins.
type Rule struct {
	// Pattern is matched against the whole tensor name
	// ("language_model.model.layers.3.self_attn.o_proj.scales").
	Pattern *regexp.Regexp
	Action  Action
	// Axis is the axis SplitAxis splits (negative counts from the end).
	Axis int
	// Segments, when set, says the split axis holds fused parts of these
	// relative sizes (a fused QKV with 32, 8 and 8 heads: {32, 8, 8}); each
	// part is split into N and a rank keeps its piece of every part, as
	// mlx's shard_linear(segments=...) does.
	Segments []int64
	// Units, when set, is the number of indivisible units the split axis
	// holds (attention heads, key-value heads): N must divide it, not just
	// the axis size.
	Units int
}

// RuleSet is an ordered list of rules. A name no rule matches is
// replicated.
type RuleSet struct {
	Name  string
	Rules []Rule
}

// ErrShard is matched by every *ShardError.
var ErrShard = errors.New("loader: tensor cannot be sharded")

// ShardError reports a tensor whose rule cannot split it into N equal
// parts: the axis size, a fused segment, its head count or its quantization
// groups do not divide by N.
type ShardError struct {
	Tensor string
	Rule   string // the rule's pattern
	Axis   int
	Dim    int64 // size of the axis, -1 when the axis does not exist
	N      int
	Detail string
}

func (e *ShardError) Error() string {
	return fmt.Sprintf("loader: tensor %q (rule %s): axis %d of size %d into %d parts: %s", e.Tensor, e.Rule, e.Axis, e.Dim, e.N, e.Detail)
}

// Is makes errors.Is(err, ErrShard) true.
func (e *ShardError) Is(target error) bool { return target == ErrShard }

// ShardErrors holds every *ShardError a plan found. Its message is one
// line a person can read — how many tensors, the first in full, a few more
// names and a count — while Unwrap hands each one to errors.As and
// errors.Is.
type ShardErrors struct {
	Errs []*ShardError
}

func (e *ShardErrors) Error() string {
	first := e.Errs[0]
	if len(e.Errs) == 1 {
		return first.Error()
	}
	msg := fmt.Sprintf("loader: %d tensors cannot be split into %d parts; the first, %q: axis %d of size %d: %s",
		len(e.Errs), first.N, first.Tensor, first.Axis, first.Dim, first.Detail)
	names := make([]string, 0, 3)
	for _, se := range e.Errs[1:min(len(e.Errs), 4)] {
		names = append(names, strconv.Quote(se.Tensor))
	}
	msg += "; also " + strings.Join(names, ", ")
	if more := len(e.Errs) - 1 - len(names); more > 0 {
		msg += fmt.Sprintf(" and %d more", more)
	}
	return msg
}

// Unwrap returns every *ShardError.
func (e *ShardErrors) Unwrap() []error {
	out := make([]error, len(e.Errs))
	for i, se := range e.Errs {
		out[i] = se
	}
	return out
}

// joinShardErrors returns nil for no errors, the one *ShardError alone, or
// a *ShardErrors sorted by tensor name; errors of other types are joined
// after it.
func joinShardErrors(errs []error) error {
	var ses []*ShardError
	var other []error
	for _, err := range errs {
		if se, ok := err.(*ShardError); ok {
			ses = append(ses, se)
		} else {
			other = append(other, err)
		}
	}
	if len(ses) == 0 {
		return errors.Join(other...)
	}
	slices.SortFunc(ses, func(a, b *ShardError) int { return strings.Compare(a.Tensor, b.Tensor) })
	var head error = &ShardErrors{Errs: ses}
	if len(ses) == 1 {
		head = ses[0]
	}
	return errors.Join(append([]error{head}, other...)...)
}

// A Split is what a rule resolves to for one tensor and world size: the
// axis and the bounds of the fused segments along it; a rank keeps part k
// of N of every segment, concatenated. Axis -1 means replicated.
type Split struct {
	Action Action
	Rule   string // the pattern that matched, "" for the default
	Axis   int
	// Bounds are the segment boundaries along Axis, from 0 to the axis
	// size: [0, dim] for a plain split.
	Bounds []int64
}

// Replicated reports whether every rank gets the whole tensor.
func (s Split) Replicated() bool { return s.Axis < 0 }

// Slices returns the slices of Axis that rank k of n keeps: its piece of
// every segment, in order (nil for a replicated split).
func (s Split) Slices(n, k int) []safetensors.Slice {
	if s.Replicated() || n <= 0 {
		return nil
	}
	out := make([]safetensors.Slice, 0, len(s.Bounds)-1)
	for j := 1; j < len(s.Bounds); j++ {
		size := (s.Bounds[j] - s.Bounds[j-1]) / int64(n)
		start := s.Bounds[j-1] + int64(k)*size
		out = append(out, safetensors.Slice{Start: start, End: start + size})
	}
	return out
}

// param returns the last component of a tensor name: "weight", "scales",
// "biases", "bias", ...
func param(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// Resolve finds the rule for t and computes its split for n ranks. It
// validates the split: every segment must divide into n parts, the units
// too, and a split inside a sub-byte dtype must land on whole bytes.
func (rs *RuleSet) Resolve(t Tensor, n int) (Split, error) {
	var r *Rule
	if rs != nil {
		for i := range rs.Rules {
			if rs.Rules[i].Pattern != nil && rs.Rules[i].Pattern.MatchString(t.Name) {
				r = &rs.Rules[i]
				break
			}
		}
	}
	if r == nil || n <= 1 {
		return Split{Action: Replicate, Axis: -1}, nil
	}
	s := Split{Action: r.Action, Rule: r.Pattern.String(), Axis: -1}
	nd := len(t.Shape)
	p := param(t.Name)
	switch r.Action {
	case Replicate:
		return s, nil
	case AllToSharded:
		s.Axis = max(nd-2, 0)
		if p == "bias" {
			s.Axis = nd - 1
		}
	case ShardedToAll:
		if p == "bias" {
			return s, nil
		}
		s.Axis = nd - 1
	case SplitAxis:
		s.Axis = r.Axis
		if s.Axis < 0 {
			s.Axis += nd
		}
	default:
		return s, fmt.Errorf("loader: rule %s has unknown action %d", s.Rule, int(r.Action))
	}
	fail := func(dim int64, format string, args ...any) (Split, error) {
		return s, &ShardError{Tensor: t.Name, Rule: s.Rule, Axis: s.Axis, Dim: dim, N: n, Detail: fmt.Sprintf(format, args...)}
	}
	if nd == 0 || s.Axis < 0 || s.Axis >= nd {
		return fail(-1, "the tensor of shape %v has no such axis", t.Shape)
	}
	dim := t.Shape[s.Axis]
	if dim%int64(n) != 0 {
		if (p == "scales" || p == "biases") && s.Axis == nd-1 {
			return fail(dim, "the input axis holds %d quantization groups, which do not divide by %d: the split would not land on a group boundary", dim, n)
		}
		return fail(dim, "the axis size does not divide by %d", n)
	}
	segs := r.Segments
	if len(segs) == 0 {
		segs = []int64{1}
	}
	var total int64
	for _, w := range segs {
		if w <= 0 {
			return fail(dim, "segment sizes %v must be positive", segs)
		}
		total += w
	}
	if dim%total != 0 {
		return fail(dim, "the axis does not split into fused segments of relative sizes %v", segs)
	}
	s.Bounds = []int64{0}
	var acc int64
	for i, w := range segs {
		acc += w
		b := dim / total * acc
		if (b-s.Bounds[i])%int64(n) != 0 {
			return fail(dim, "segment %d [%d, %d) does not divide by %d", i, s.Bounds[i], b, n)
		}
		s.Bounds = append(s.Bounds, b)
	}
	if r.Units > 0 && r.Units%n != 0 {
		return fail(dim, "its %d heads do not divide by %d", r.Units, n)
	}
	if r.Units > 0 && dim%int64(r.Units) != 0 {
		return fail(dim, "the axis does not hold %d heads of equal size", r.Units)
	}
	// Every piece must start and end on a byte: when rank 0's do, since
	// the pieces of a segment have one size, every rank's do.
	if _, err := t.info().Part(s.Axis, s.Slices(n, 0)...); err != nil {
		return fail(dim, "a part would cut inside a byte of %s", t.Dtype)
	}
	return s, nil
}

// checkQuantized validates the triplets of a quantized linear layer: its
// packed weight [..., out, in*bits/32] and its scales and biases
// [..., out, in/group_size] must be split along the same axis, and a split
// of the input axis must land on a group boundary, which holds when both
// the packed words and the groups divide by n.
func checkQuantized(tensors map[string]Tensor, splits map[string]Split, n int) error {
	var errs []error
	for name, t := range tensors {
		if param(name) != "scales" {
			continue
		}
		base := strings.TrimSuffix(name, "scales")
		w, ok := tensors[base+"weight"]
		if !ok {
			continue
		}
		ws, ss := splits[base+"weight"], splits[name]
		if ws.Axis != ss.Axis {
			errs = append(errs, &ShardError{Tensor: name, Rule: ss.Rule, Axis: ss.Axis, Dim: -1, N: n,
				Detail: fmt.Sprintf("its weight is split along axis %d, its scales along %d", ws.Axis, ss.Axis)})
			continue
		}
		if b, ok := tensors[base+"biases"]; ok && splits[base+"biases"].Axis != ss.Axis {
			errs = append(errs, &ShardError{Tensor: b.Name, Rule: splits[b.Name].Rule, Axis: splits[b.Name].Axis, Dim: -1, N: n,
				Detail: fmt.Sprintf("its scales are split along axis %d, its biases along %d", ss.Axis, splits[b.Name].Axis)})
		}
		last := len(t.Shape) - 1
		if ss.Axis != last || last < 0 || len(w.Shape) != len(t.Shape) {
			continue
		}
		groups, words := t.Shape[last], w.Shape[last]
		if groups%int64(n) != 0 || words%int64(n) != 0 {
			errs = append(errs, &ShardError{Tensor: name, Rule: ss.Rule, Axis: last, Dim: groups, N: n,
				Detail: fmt.Sprintf("the input axis holds %d quantization groups in %d packed words; both must divide by %d so the split lands on a group boundary", groups, words, n)})
		}
	}
	return joinShardErrors(errs)
}

func rx(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// lin matches the weight, scales, biases and bias of a linear module whose
// name ends with one of the given module paths.
func lin(modules ...string) *regexp.Regexp {
	return rx(`(?:^|\.)(?:` + strings.Join(modules, "|") + `)\.(?:weight|scales|biases|bias)$`)
}

// DeepSeekV3Rules shards DeepSeek-V3 and Kimi K2.x exactly as mlx-lm does
// (its DeepseekV3Model.shard):
//
//   - q_b_proj (or q_proj without a q LoRA) all-to-sharded: heads divided;
//   - kv_b_proj, as the checkpoint from Hugging Face holds it
//     ([heads × (qk_nope + v_head), kv_lora], head-major rows), split by
//     head along axis 0 — mlx-lm's sanitize turns it into embed_q and
//     unembed_out per head and then keeps heads [r·H/N, (r+1)·H/N), which
//     are exactly these rows — and embed_q / unembed_out, as an mlx-lm
//     conversion saves them ([heads, ...]), split by head along axis 0;
//   - o_proj sharded-to-all;
//   - q_a_proj, kv_a_proj_with_mqa and every norm replicated;
//   - dense MLP and MoE shared experts: gate/up all-to-sharded, down
//     sharded-to-all; the stacked switch_mlp experts [E, out, in] likewise
//     (axis 1, resp. the last axis): every rank keeps every expert at 1/N of
//     the intermediate size;
//   - the router gate and its e_score_correction_bias, embed_tokens, lm_head
//     and every tower replicated.
//
// heads is the attention head count (64 for Kimi K2.5); 0 checks only that
// the axes divide.
func DeepSeekV3Rules(heads int) *RuleSet {
	return &RuleSet{Name: "deepseek_v3", Rules: []Rule{
		{Pattern: towerRE, Action: Replicate},
		{Pattern: lin(`self_attn\.q_b_proj`, `self_attn\.q_proj`), Action: AllToSharded, Units: heads},
		{Pattern: lin(`self_attn\.kv_b_proj`), Action: SplitAxis, Axis: 0, Units: heads},
		{Pattern: lin(`self_attn\.embed_q`, `self_attn\.unembed_out`), Action: SplitAxis, Axis: 0, Units: heads},
		{Pattern: lin(`self_attn\.o_proj`), Action: ShardedToAll},
		{Pattern: lin(`mlp\.gate_proj`, `mlp\.up_proj`, `shared_experts\.gate_proj`, `shared_experts\.up_proj`,
			`switch_mlp\.gate_proj`, `switch_mlp\.up_proj`), Action: AllToSharded},
		{Pattern: lin(`mlp\.down_proj`, `shared_experts\.down_proj`, `switch_mlp\.down_proj`), Action: ShardedToAll},
	}}
}

// LlamaRules shards Llama, Mistral and Qwen-style dense models as mlx-lm
// does: q/k/v and gate/up all-to-sharded, o and down sharded-to-all, the
// rest (embeddings, norms, q_norm/k_norm, lm_head) replicated. heads and
// kvHeads, when not 0, are checked for divisibility by N (grouped-query
// attention needs N to divide the key-value heads).
func LlamaRules(heads, kvHeads int) *RuleSet {
	return &RuleSet{Name: "llama", Rules: []Rule{
		{Pattern: towerRE, Action: Replicate},
		{Pattern: lin(`self_attn\.q_proj`), Action: AllToSharded, Units: heads},
		{Pattern: lin(`self_attn\.k_proj`, `self_attn\.v_proj`), Action: AllToSharded, Units: kvHeads},
		{Pattern: lin(`self_attn\.o_proj`), Action: ShardedToAll},
		{Pattern: lin(`mlp\.gate_proj`, `mlp\.up_proj`), Action: AllToSharded},
		{Pattern: lin(`mlp\.down_proj`), Action: ShardedToAll},
	}}
}

var towerRE = rx(`^(?:model\.)?(?:` + strings.Join(TowerPrefixes, "|") + `)\.`)

// DetectRules picks the built-in rule set from the tensor names: DeepSeek-V3
// when a kv_a_proj_with_mqa is present, Llama otherwise. Head counts are
// not known from names; pass a rule set built with them to check GQA.
func DetectRules(tensors []Tensor) *RuleSet {
	for _, t := range tensors {
		if strings.Contains(t.Name, "kv_a_proj_with_mqa") {
			return DeepSeekV3Rules(0)
		}
	}
	return LlamaRules(0, 0)
}
