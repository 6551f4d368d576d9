package loader

import (
	"context"
	"regexp"

	"github.com/mlxdist/mlxdist/loader/shard"
	"github.com/mlxdist/mlxdist/safetensors"
)

// The rules, the plan, the sections, placement and Reshard live in package
// shard, which needs no MLX; these names are the same types, values and
// functions under the names this package has always given them.

type (
	Action           = shard.Action
	Tensor           = shard.Tensor
	LoadError        = shard.LoadError
	Placement        = shard.Placement
	PlacementError   = shard.PlacementError
	PlacementOptions = shard.PlacementOptions
	Plan             = shard.Plan
	PlanError        = shard.PlanError
	PlanOptions      = shard.PlanOptions
	Rule             = shard.Rule
	RuleSet          = shard.RuleSet
	Section          = shard.Section
	SectionFunc      = shard.SectionFunc
	SectionKind      = shard.SectionKind
	SectionPlan      = shard.SectionPlan
	ShardError       = shard.ShardError
	ShardErrors      = shard.ShardErrors
	StreamLink       = shard.StreamLink
	StreamPlan       = shard.StreamPlan
	StreamPrediction = shard.StreamPrediction
	ShardStamp       = shard.ShardStamp
	Split            = shard.Split
	Stage            = shard.Stage
	Strategy         = shard.Strategy
	TensorPlan       = shard.TensorPlan
)

const (
	Direct        = shard.Direct
	EvalShardEval = shard.EvalShardEval
	ChunkedEval   = shard.ChunkedEval

	Replicate    = shard.Replicate
	AllToSharded = shard.AllToSharded
	ShardedToAll = shard.ShardedToAll
	SplitAxis    = shard.SplitAxis

	Before = shard.Before
	Block  = shard.Block
	After  = shard.After
	Tower  = shard.Tower

	ShardStampName = shard.ShardStampName
)

var (
	ErrChanged        = shard.ErrChanged
	ErrNoPlacement    = shard.ErrNoPlacement
	ErrShard          = shard.ErrShard
	ErrShardMismatch  = shard.ErrShardMismatch
	ErrUnsafeOutput   = shard.ErrUnsafeOutput
	ErrUnstampedShard = shard.ErrUnstampedShard
	ErrWontFit        = shard.ErrWontFit
	// TowerPrefixes shares shard.TowerPrefixes' elements; assigning it a
	// new slice does not change shard's.
	TowerPrefixes = shard.TowerPrefixes
)

// AllocCPU is shard.AllocCPU.
func AllocCPU(n int64) int64 { return shard.AllocCPU(n) }

// LayerIndex is shard.LayerIndex.
func LayerIndex(name string) int { return shard.LayerIndex(name) }

// Place is shard.Place of a checkpoint's tensors (or of a model's,
// described as header entries).
func Place(tensors []safetensors.TensorInfo, o PlacementOptions) (*Placement, error) {
	return shard.Place(shard.Describe(tensors), o)
}

// PlaceAuto is shard.PlaceAuto of a checkpoint's tensors (or of a model's,
// described as header entries).
func PlaceAuto(tensors []safetensors.TensorInfo, o PlacementOptions) (*Placement, error) {
	return shard.PlaceAuto(shard.Describe(tensors), o)
}

// NewPlan is shard.NewPlan of a checkpoint's tensors (safetensors.Dir's
// Tensors), or of a model's described as header entries, where only Name,
// Dtype and Shape matter.
func NewPlan(tensors []safetensors.TensorInfo, o PlanOptions) (*Plan, error) {
	return shard.NewPlan(shard.Describe(tensors), o)
}

// DeepSeekV3Rules is shard.DeepSeekV3Rules.
func DeepSeekV3Rules(heads int) *RuleSet { return shard.DeepSeekV3Rules(heads) }

// DetectRules is shard.DetectRules of a checkpoint's tensors.
func DetectRules(tensors []safetensors.TensorInfo) *RuleSet {
	return shard.DetectRules(shard.Describe(tensors))
}

// LlamaRules is shard.LlamaRules.
func LlamaRules(heads, kvHeads int) *RuleSet { return shard.LlamaRules(heads, kvHeads) }

// DefaultSections is shard.DefaultSections.
func DefaultSections(name string) Section { return shard.DefaultSections(name) }

// SectionsByPattern is shard.SectionsByPattern.
func SectionsByPattern(re *regexp.Regexp) SectionFunc { return shard.SectionsByPattern(re) }

// ReadShardStamp is shard.ReadShardStamp.
func ReadShardStamp(dir string) (*ShardStamp, error) { return shard.ReadShardStamp(dir) }

// Reshard is shard.Reshard: it writes rank o.Rank's shard of the checkpoint
// at src to dst, with no MLX.
func Reshard(ctx context.Context, src, dst string, o PlanOptions, progress func(done, total int64)) (*ShardStamp, error) {
	return shard.Reshard(ctx, src, dst, o, progress)
}

// ParseStrategy is shard.ParseStrategy.
func ParseStrategy(s string) (Strategy, error) { return shard.ParseStrategy(s) }

// NewStreamPlan is shard.NewStreamPlan.
func NewStreamPlan(p *Plan, sources []int, neighboursOnly bool, window int64) (*StreamPlan, error) {
	return shard.NewStreamPlan(p, sources, neighboursOnly, window)
}
