package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/safetensors"
)

// Strategy is how the loader turns files into this rank's arrays.
type Strategy int

const (
	// Direct fills each array of this rank's shard straight from the byte
	// ranges of the file that hold it, into memory that becomes the MLX
	// array: a full tensor the rank needs only part of is never read, never
	// held. Peak ≈ the shard; bytes read ≈ the shard.
	Direct Strategy = iota
	// EvalShardEval is mlx-lm's and exo's path: per section, the full
	// tensors are materialized (by the loader's workers, or by MLX's own
	// loader), the rank's slices are made contiguous and evaluated, and the
	// originals are freed before the next section. Peak ≈ the shard so far
	// + one full section + its shard.
	EvalShardEval
	// ChunkedEval loads every tensor whole, one section at a time, and
	// shards nothing (every rank gets the whole model): mlx-lm's
	// single-node path.
	ChunkedEval
)

func (s Strategy) String() string {
	switch s {
	case Direct:
		return "direct"
	case EvalShardEval:
		return "eval-shard-eval"
	case ChunkedEval:
		return "chunked-eval"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// MarshalText writes the strategy's name in JSON plans.
func (s Strategy) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseStrategy reads "direct", "eval-shard-eval" or "chunked-eval".
func ParseStrategy(s string) (Strategy, error) {
	for _, v := range []Strategy{Direct, EvalShardEval, ChunkedEval} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("loader: unknown strategy %q (want direct, eval-shard-eval or chunked-eval)", s)
}

// TensorPlan is one tensor of a plan: where it comes from and what this
// rank keeps of it.
type TensorPlan struct {
	Name  string            `json:"name"`
	Dtype safetensors.Dtype `json:"dtype"`
	Shape []int64           `json:"shape"`
	// ShardShape is the shape of the rank's array.
	ShardShape []int64 `json:"shard_shape"`
	Split      Split   `json:"split"`
	// Bytes is the full tensor's size, ShardBytes the rank's part.
	Bytes      int64  `json:"bytes"`
	ShardBytes int64  `json:"shard_bytes"`
	File       string `json:"file,omitempty"`
	// Part is where the rank's part lies in File: what the Direct strategy
	// reads for it.
	Part safetensors.Part `json:"-"`

	info safetensors.TensorInfo
}

// PartOf returns where rank k of n's part of the tensor lies in its file.
func (tp *TensorPlan) PartOf(n, k int) (safetensors.Part, error) {
	if tp.Split.Replicated() {
		return tp.info.Whole(), nil
	}
	return tp.info.Part(tp.Split.Axis, tp.Split.Slices(n, k)...)
}

// SectionPlan is one section of a plan, with its predicted figures (bytes).
type SectionPlan struct {
	Section
	Tensors []TensorPlan `json:"tensors"`
	// Read is what the strategy reads from the files for this section,
	// Full the section's full tensors, Shard what the rank keeps of them.
	Read  int64 `json:"read"`
	Full  int64 `json:"full"`
	Shard int64 `json:"shard"`
	// Disk estimates what a cold read of Read pulls from storage: the whole
	// pages its byte runs touch (see PlanOptions.PageSize).
	Disk int64 `json:"disk"`
	// Resident is what the loaded sections hold once this one is done,
	// Peak the most MLX memory held while loading it, both on top of what
	// was active before the load began.
	Resident int64 `json:"resident"`
	Peak     int64 `json:"peak"`
}

// Plan is the loader's prediction, from tensor headers alone, of what a
// rank reads and holds, section by section.
type Plan struct {
	Rank      int      `json:"rank"`
	WorldSize int      `json:"world_size"`
	Strategy  Strategy `json:"strategy"`
	Rules     string   `json:"rules"`
	// Checkpoint is the size of every tensor; Replicated the part of it
	// every rank holds whole.
	Checkpoint int64 `json:"checkpoint"`
	Replicated int64 `json:"replicated"`
	Read       int64 `json:"read"`
	// Disk estimates the bytes a cold load pulls from storage: Read
	// rounded out to the pages it touches. For a part split on the last
	// axis (sharded-to-all) whose runs are shorter than a page apart, that
	// is the whole tensor, however little of it the rank keeps.
	Disk     int64 `json:"disk"`
	Resident int64 `json:"resident"`
	Peak     int64 `json:"peak"`
	// PeakSection is the section during which Peak is reached.
	PeakSection string        `json:"peak_section"`
	Sections    []SectionPlan `json:"sections"`
	// Stream is set for a load where some ranks receive their shard over
	// the group (loader.OpenStream); a source's Peak then counts its window.
	Stream *StreamPlan `json:"stream,omitempty"`
}

// PlanOptions is the part of loader.Options a plan depends on.
type PlanOptions struct {
	Rank, WorldSize int
	Strategy        Strategy
	// Rules shard the tensors; nil means DetectRules.
	Rules *RuleSet
	// Sections groups tensors; nil means DefaultSections.
	Sections SectionFunc
	// Alloc rounds an allocation of n bytes up as MLX's allocator does;
	// nil means AllocCPU. Another allocator is the caller's to model (MLX's
	// Metal allocator rounds a buffer larger than a page up to whole pages).
	Alloc func(n int64) int64
	// PageSize is the storage page size Disk is counted in; 0 means this
	// machine's (16 KiB on Apple silicon, 4 KiB on most Linux machines).
	PageSize int64
	// Keep, when set, restricts the load to the sections it accepts: a
	// pipeline stage's layers and the embeddings or head it needs (see
	// Placement.Keep). Other sections are neither planned nor read; the
	// plan's Checkpoint still counts every tensor.
	Keep func(Section) bool
}

// AllocCPU models MLX's CPU allocator: measured, it accounts exactly the
// bytes asked for (active memory grows by n for an n-byte array).
func AllocCPU(n int64) int64 { return n }

// ErrWontFit is matched by a *PlanError.
var ErrWontFit = errors.New("loader: the load would not fit in memory")

// PlanError refuses a load whose predicted peak would not fit under the
// memory guard.
type PlanError struct {
	Plan *Plan
	// Err is the guard's *memguard.ExceededError, with the figures.
	Err error
}

func (e *PlanError) Error() string {
	return fmt.Sprintf("loader: rank %d/%d %s load peaks at %s during %s: %v; use more ranks, the direct strategy, or set IgnorePlan",
		e.Plan.Rank, e.Plan.WorldSize, e.Plan.Strategy, units.FormatGB(e.Plan.Peak), e.Plan.PeakSection, e.Err)
}

// Unwrap gives the guard's error.
func (e *PlanError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrWontFit) true.
func (e *PlanError) Is(target error) bool { return target == ErrWontFit }

// NewPlan plans the load of tensors — a checkpoint's (Describe of its
// headers) or a model's described without files — for one rank. It
// validates every description and every split first and returns every
// *ShardError found in one *ShardErrors, whose message is a one-line
// summary.
func NewPlan(tensors []Tensor, o PlanOptions) (*Plan, error) {
	if o.WorldSize <= 0 {
		o.WorldSize = 1
	}
	if o.Rank < 0 || o.Rank >= o.WorldSize {
		return nil, fmt.Errorf("loader: rank %d is not in a world of %d", o.Rank, o.WorldSize)
	}
	if o.Rules == nil {
		o.Rules = DetectRules(tensors)
	}
	if o.Sections == nil {
		o.Sections = DefaultSections
	}
	if o.Alloc == nil {
		o.Alloc = AllocCPU
	}
	if o.PageSize <= 0 {
		o.PageSize = int64(os.Getpagesize())
	}
	n := o.WorldSize
	if o.Strategy == ChunkedEval {
		n = 1
	}
	byName := make(map[string]Tensor, len(tensors))
	splits := make(map[string]Split, len(tensors))
	var errs []error
	var checkpoint int64
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		if seen[t.Name] {
			return nil, fmt.Errorf("loader: tensor %q is described twice", t.Name)
		}
		seen[t.Name] = true
		size, err := t.size()
		if err != nil {
			return nil, err
		}
		checkpoint += size
		if o.Keep != nil && !o.Keep(o.Sections(t.Name)) {
			continue
		}
		byName[t.Name] = t
		s, err := o.Rules.Resolve(t, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		splits[t.Name] = s
	}
	if err := joinShardErrors(errs); err != nil {
		return nil, err
	}
	if err := checkQuantized(byName, splits, n); err != nil {
		return nil, err
	}
	p := &Plan{Rank: o.Rank, WorldSize: o.WorldSize, Strategy: o.Strategy, Rules: o.Rules.Name, Checkpoint: checkpoint}
	secs := map[string]*SectionPlan{}
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		t := byName[name]
		sec := o.Sections(name)
		sp := secs[sec.Name]
		if sp == nil {
			sp = &SectionPlan{Section: sec}
			secs[sec.Name] = sp
		}
		s := splits[name]
		tp := TensorPlan{Name: name, Dtype: t.Dtype, Shape: t.Shape, ShardShape: t.Shape, Split: s,
			Bytes: t.Size(), ShardBytes: t.Size(), File: t.File, info: t.info()}
		if !s.Replicated() {
			tp.ShardShape = slices.Clone(t.Shape)
			tp.ShardShape[s.Axis] /= int64(n)
			tp.ShardBytes = t.Size() / int64(n)
		}
		part, err := tp.PartOf(n, min(o.Rank, n-1))
		if err != nil {
			return nil, err // Resolve checked the split
		}
		tp.Part = part
		sp.Tensors = append(sp.Tensors, tp)
		if s.Replicated() {
			p.Replicated += t.Size()
		}
	}
	for _, sp := range secs {
		p.Sections = append(p.Sections, *sp)
	}
	slices.SortFunc(p.Sections, func(a, b SectionPlan) int { return sectionLess(a.Section, b.Section) })
	var resident int64
	for i := range p.Sections {
		sp := &p.Sections[i]
		var copies int64 // EvalShardEval: the sliced copies made beside the originals
		for _, tp := range sp.Tensors {
			full, shard := o.Alloc(tp.Bytes), o.Alloc(tp.ShardBytes)
			sp.Full += full
			sp.Shard += shard
			switch o.Strategy {
			case Direct:
				sp.Read += tp.ShardBytes
				sp.Disk += tp.Part.Pages(o.PageSize)
			default:
				sp.Read += tp.Bytes
				sp.Disk += tp.info.Whole().Pages(o.PageSize)
			}
			if !tp.Split.Replicated() {
				copies += shard
			}
		}
		switch o.Strategy {
		case Direct:
			// Each array is allocated at its final size and filled once.
			sp.Peak = resident + sp.Shard
		case EvalShardEval:
			sp.Peak = resident + sp.Full + copies
		case ChunkedEval:
			sp.Peak = resident + sp.Full
		}
		resident += sp.Shard
		sp.Resident = resident
		p.Read += sp.Read
		p.Disk += sp.Disk
		if sp.Peak > p.Peak {
			p.Peak, p.PeakSection = sp.Peak, sp.Name
		}
	}
	p.Resident = resident
	return p, nil
}

// Ranges yields the file byte ranges of this rank's part of tp (a tensor
// of p), in the order its bytes lie in the part, adjacent ranges merged:
// what the Direct strategy reads for it. It lets a tool copy or prefetch
// exactly a rank's bytes without MLX.
func (p *Plan) Ranges(tp *TensorPlan) iter.Seq[safetensors.Range] {
	return tp.Part.Ranges()
}

// JSON returns the plan as indented JSON.
func (p *Plan) JSON() ([]byte, error) { return json.MarshalIndent(p, "", "  ") }

// WriteTable prints the plan as a table, one line per section, figures in
// GB, then the totals.
func (p *Plan) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	gb := func(n int64) string { return units.FormatGB(max(n, 0)) }
	fmt.Fprintf(tw, "section\ttensors\tread\tdisk\tfull\tshard\tresident\tpeak\t\n")
	for _, s := range p.Sections {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, len(s.Tensors), gb(s.Read), gb(s.Disk), gb(s.Full), gb(s.Shard), gb(s.Resident), gb(s.Peak))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "rank %d/%d, %s, rules %s: checkpoint %s (replicated %s), read %s (%s of pages from a cold disk), resident %s, peak %s (during %s)\n",
		p.Rank, p.WorldSize, p.Strategy, p.Rules, gb(p.Checkpoint), gb(p.Replicated), gb(p.Read), gb(p.Disk), gb(p.Resident), gb(p.Peak), p.PeakSection)
	return err
}
