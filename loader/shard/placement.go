package shard

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"text/tabwriter"

	"github.com/mlxdist/mlxdist/internal/units"
)

// PlacementOptions describe the cluster and the run a placement is for.
type PlacementOptions struct {
	// PlanOptions shard and section the tensors as a load would; Rank,
	// WorldSize and Keep are set per rank by the placement and ignored here.
	PlanOptions
	// Memory is each rank's usable memory in bytes (what its guard allows:
	// physical memory less headroom, less what is in use); its length is
	// the world size.
	Memory []int64
	// TP is the number of ranks in a stage, which split every layer of the
	// stage between them; 0 means 1. The world size must be a multiple.
	TP int
	// KVPerLayer is one layer's KV cache, in bytes on one rank of a stage,
	// at the context length the placement is for (see model's
	// InferencePlan: KVCache / layers, planned for TP ranks).
	KVPerLayer int64
	// Activations is the largest step's transient arrays on one rank; every
	// stage is given them.
	Activations int64
	// TiedEmbeddings says the head is the embedding matrix
	// (tie_word_embeddings): the last stage holds the embeddings too.
	TiedEmbeddings bool
}

// Stage is one pipeline stage of a placement: consecutive layers, held by
// TP ranks, each with its slice of every tensor. Figures are bytes on one
// rank of the stage.
type Stage struct {
	Index int   `json:"stage"`
	Ranks []int `json:"ranks"`
	// FirstLayer and EndLayer bound the stage's layers, [FirstLayer,
	// EndLayer); Layers counts them.
	FirstLayer int `json:"first_layer"`
	EndLayer   int `json:"end_layer"`
	Layers     int `json:"layers"`
	// Embeddings and Head say whether the stage holds the token embeddings
	// (the first stage, and the last when they are tied) and the final norm
	// and head (the last stage).
	Embeddings bool `json:"embeddings"`
	Head       bool `json:"head"`
	// Weights is what the stage's load leaves resident, LoadPeak the most
	// the load holds at once.
	Weights  int64 `json:"weights"`
	LoadPeak int64 `json:"load_peak"`
	KVCache  int64 `json:"kv_cache"`
	// Activations is the largest step's transient arrays.
	Activations int64 `json:"activations"`
	// Peak is the larger of LoadPeak and Weights + KVCache + Activations.
	Peak int64 `json:"peak"`
	// Memory is the least usable memory among the stage's ranks.
	Memory int64 `json:"memory"`
	// Cost is what a decoding step reads of the stage's weights: its
	// layers, and the head on the last stage (an embedding lookup reads
	// one row). A step is bound by memory bandwidth, so the stage with the
	// largest cost is the pipeline's slowest.
	Cost int64 `json:"cost"`
}

// Placement assigns a model's layers to pipeline stages and each stage's
// tensor-parallel slices to its ranks: stage s is ranks s·TP … s·TP+TP−1,
// and rank r holds slice r mod TP of stage r / TP's layers.
type Placement struct {
	WorldSize int      `json:"world_size"`
	TP        int      `json:"tp"`
	PP        int      `json:"pp"`
	Strategy  Strategy `json:"strategy"`
	Rules     string   `json:"rules"`
	// Layers is the model's transformer layer count.
	Layers int     `json:"layers"`
	Stages []Stage `json:"stages"`
	// Bottleneck is the index of the stage with the largest Cost.
	Bottleneck int `json:"bottleneck"`
	// StepReads is what one token's step reads on the ranks it passes
	// through in turn, one rank per stage: the sum of the stages' Cost.
	// With one micro-batch, a step's time goes as StepReads; with the
	// stages kept busy by several, as the bottleneck's Cost.
	StepReads int64 `json:"step_reads"`

	keep []func(Section) bool
}

// ErrNoPlacement is matched by a *PlacementError.
var ErrNoPlacement = errors.New("loader: no placement fits")

// PlacementError refuses a placement: no split of the layers into stages
// fits every rank's memory, or the world and TP degree do not make stages.
type PlacementError struct {
	Reason string
}

func (e *PlacementError) Error() string { return "loader: " + e.Reason }

// Is makes errors.Is(err, ErrNoPlacement) true.
func (e *PlacementError) Is(target error) bool { return target == ErrNoPlacement }

// Place splits the model's layers (from a checkpoint's headers or a
// description, as NewPlan takes them) into len(o.Memory)/TP pipeline
// stages of consecutive layers, the embeddings on the first stage and the
// final norm and head on the last, such that every rank's predicted peak —
// the larger of its load's peak and its weights plus KV cache plus
// activations — fits its memory, and the stage that reads the most per
// step reads as little as possible. Among the splits as light, it takes
// the one whose fullest rank is least full: with memory to spare the
// stages even out, and where memory binds the layers follow it. Towers (a
// vision tower) belong to no stage: a pipeline runs the language model.
//
// It reads no weight and refuses, with a *PlacementError that says what is
// short, when nothing fits.
func Place(tensors []Tensor, o PlacementOptions) (*Placement, error) {
	world := len(o.Memory)
	tpn := max(o.TP, 1)
	if world == 0 {
		return nil, &PlacementError{Reason: "a placement needs the memory of at least one rank"}
	}
	if world%tpn != 0 {
		return nil, &PlacementError{Reason: fmt.Sprintf("TP=%d does not divide a world of %d ranks; give a TP degree that divides it", tpn, world)}
	}
	pp := world / tpn
	po := o.PlanOptions
	po.Rank, po.WorldSize, po.Keep = 0, tpn, nil
	if po.Sections == nil {
		po.Sections = DefaultSections
	}
	full, err := NewPlan(tensors, po)
	if err != nil {
		return nil, err
	}
	// Per section: what it leaves resident, and what its load holds on top
	// of what was resident before it.
	type fig struct{ shard, over int64 }
	var before, after fig
	var layers []fig
	var layerNo []int
	for _, sp := range full.Sections {
		f := fig{shard: sp.Shard, over: sp.Peak - (sp.Resident - sp.Shard)}
		switch sp.Kind {
		case Before:
			before = f
		case After:
			after = f
		case Block:
			layers = append(layers, f)
			layerNo = append(layerNo, sp.Layer)
		}
	}
	nl := len(layers)
	if nl < pp {
		return nil, &PlacementError{Reason: fmt.Sprintf("%d layers cannot make %d pipeline stages; use fewer stages (a larger TP degree or fewer ranks)", nl, pp)}
	}
	mem := make([]int64, pp)
	for s := range pp {
		mem[s] = slices.Min(o.Memory[s*tpn : (s+1)*tpn])
	}
	// stage figures the stage s holding layers [a, b) (indices into layers).
	stage := func(s, a, b int) Stage {
		st := Stage{Index: s, Layers: b - a, Memory: mem[s], Embeddings: s == 0 || (s == pp-1 && o.TiedEmbeddings), Head: s == pp-1}
		var res int64
		add := func(f fig) {
			st.LoadPeak = max(st.LoadPeak, res+f.over)
			res += f.shard
		}
		if st.Embeddings {
			add(before)
		}
		for i := a; i < b; i++ {
			add(layers[i])
			st.Cost += layers[i].shard
		}
		if st.Head {
			add(after)
			st.Cost += after.shard
			if o.TiedEmbeddings {
				st.Cost += before.shard
			}
		}
		st.Weights = res
		st.KVCache = o.KVPerLayer * int64(b-a)
		st.Activations = o.Activations
		st.Peak = max(st.LoadPeak, st.Weights+st.KVCache+st.Activations)
		return st
	}
	fits := func(st Stage) bool { return st.Peak <= st.Memory }
	fullness := func(st Stage) float64 { return float64(st.Peak) / float64(max(st.Memory, 1)) }

	// Two min-max passes over contiguous splits: the lightest bottleneck
	// first, then, under it, the least full rank.
	split := func(score func(Stage) float64, limit float64) ([]int, float64) {
		inf := math.Inf(1)
		// best[s][b]: the best worst score of stages 0..s covering layers [0, b).
		best := make([][]float64, pp)
		from := make([][]int, pp)
		for s := range pp {
			best[s] = slices.Repeat([]float64{inf}, nl+1)
			from[s] = make([]int, nl+1)
			for b := s + 1; b <= nl-(pp-1-s); b++ {
				for a := s; a < b; a++ {
					prev := 0.0
					if s > 0 {
						prev = best[s-1][a]
					} else if a > 0 {
						break // the first stage starts at the first layer
					}
					if prev == inf {
						continue
					}
					st := stage(s, a, b)
					if !fits(st) || float64(st.Cost) > limit {
						continue
					}
					if v := max(prev, score(st)); v < best[s][b] {
						best[s][b], from[s][b] = v, a
					}
				}
			}
		}
		if best[pp-1][nl] == inf {
			return nil, inf
		}
		bounds := make([]int, pp+1)
		bounds[pp] = nl
		for s := pp - 1; s > 0; s-- {
			bounds[s] = from[s][bounds[s+1]]
		}
		return bounds, best[pp-1][nl]
	}
	_, lightest := split(func(st Stage) float64 { return float64(st.Cost) }, math.Inf(1))
	if math.IsInf(lightest, 1) {
		return nil, noFit(o, pp, tpn, nl, stage, mem)
	}
	bounds, _ := split(fullness, lightest)

	p := &Placement{WorldSize: world, TP: tpn, PP: pp, Strategy: po.Strategy, Rules: full.Rules, Layers: nl}
	for s := range pp {
		st := stage(s, bounds[s], bounds[s+1])
		st.FirstLayer = layerNo[bounds[s]]
		st.EndLayer = layerNo[bounds[s+1]-1] + 1
		for r := s * tpn; r < (s+1)*tpn; r++ {
			st.Ranks = append(st.Ranks, r)
		}
		if s > 0 && st.Cost > p.Stages[p.Bottleneck].Cost {
			p.Bottleneck = s
		}
		p.StepReads += st.Cost
		p.Stages = append(p.Stages, st)
		keep := map[int]bool{}
		for _, n := range layerNo[bounds[s]:bounds[s+1]] {
			keep[n] = true
		}
		emb, head := st.Embeddings, st.Head
		p.keep = append(p.keep, func(sec Section) bool {
			switch sec.Kind {
			case Before:
				return emb
			case After:
				return head
			case Block:
				return keep[sec.Layer]
			}
			return false
		})
	}
	return p, nil
}

// noFit explains why no split fits: the smallest peak a stage could have
// (one layer) against its memory, or the whole model against all of it.
func noFit(o PlacementOptions, pp, tpn, nl int, stage func(s, a, b int) Stage, mem []int64) error {
	gb := func(n int64) string { return units.FormatGB(max(n, 0)) }
	var need, have int64
	whole := stage(0, 0, nl)
	need = whole.Weights + whole.KVCache + int64(pp)*o.Activations
	for _, m := range mem {
		have += m
	}
	for s := range pp {
		if st := stage(s, min(s, nl-1), min(s, nl-1)+1); st.Peak > st.Memory {
			return &PlacementError{Reason: fmt.Sprintf("no placement fits: stage %d (ranks %d-%d) peaks at %s with a single layer but has %s; give it more memory, use a larger TP degree, or shorten the context",
				s, s*tpn, s*tpn+tpn-1, gb(st.Peak), gb(st.Memory))}
		}
	}
	return &PlacementError{Reason: fmt.Sprintf("no placement of %d layers in %d stages of TP=%d fits: they need about %s per TP slice (weights, KV cache, activations) and the stages have %s; add memory or ranks, or shorten the context",
		nl, pp, tpn, gb(need), gb(have))}
}

// StageOf returns the stage rank belongs to.
func (p *Placement) StageOf(rank int) *Stage {
	if rank < 0 || rank >= p.WorldSize {
		return nil
	}
	return &p.Stages[rank/p.TP]
}

// Keep returns the section filter of rank's stage (PlanOptions.Keep).
func (p *Placement) Keep(rank int) func(Section) bool {
	return p.keep[rank/p.TP]
}

// PlanOptions returns o set up for rank: its slice within its stage (Rank
// rank mod TP of WorldSize TP) and its stage's sections.
func (p *Placement) PlanOptions(rank int, o PlanOptions) PlanOptions {
	o.Rank, o.WorldSize, o.Keep = rank%p.TP, p.TP, p.Keep(rank)
	return o
}

// JSON returns the placement as indented JSON.
func (p *Placement) JSON() ([]byte, error) { return json.MarshalIndent(p, "", "  ") }

// WriteTable prints one line per stage, figures in GB, then the choice.
func (p *Placement) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	gb := func(n int64) string { return units.FormatGB(max(n, 0)) }
	fmt.Fprintf(tw, "stage\tranks\tlayers\tembed\thead\tweights\tload peak\tKV cache\tpeak\tmemory\tfull\tstep reads\t\n")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "-"
	}
	for _, s := range p.Stages {
		ranks := fmt.Sprint(s.Ranks[0])
		if len(s.Ranks) > 1 {
			ranks = fmt.Sprintf("%d-%d", s.Ranks[0], s.Ranks[len(s.Ranks)-1])
		}
		fmt.Fprintf(tw, "%d\t%s\t%d-%d (%d)\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f%%\t%s\t\n", s.Index, ranks, s.FirstLayer, s.EndLayer-1, s.Layers,
			yes(s.Embeddings), yes(s.Head), gb(s.Weights), gb(s.LoadPeak), gb(s.KVCache), gb(s.Peak), gb(s.Memory),
			100*float64(s.Peak)/float64(max(s.Memory, 1)), gb(s.Cost))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b := p.Stages[p.Bottleneck]
	_, err := fmt.Fprintf(w, "TP=%d × PP=%d on %d ranks, %s, rules %s: stage %d is the slowest, reading %s a step on each of its ranks; a token's step reads %s through the stages\n",
		p.TP, p.PP, p.WorldSize, p.Strategy, p.Rules, b.Index, gb(b.Cost), gb(p.StepReads))
	return err
}

// PlaceAuto tries every TP degree that divides the world (o.TP is
// ignored) and returns the placement whose step reads the least on the
// ranks it passes through (StepReads: a token crosses the stages in turn,
// while a stage's ranks read their slices at once); of equals, the
// smaller TP degree, which all-sums less. A TP
// degree the model's heads or widths cannot split is passed over; when
// none fits, the error is TP=1's (a pipeline of single ranks).
func PlaceAuto(tensors []Tensor, o PlacementOptions) (*Placement, error) {
	var best *Placement
	var first error
	for tpn := 1; tpn <= len(o.Memory); tpn++ {
		if len(o.Memory)%tpn != 0 {
			continue
		}
		o.TP = tpn
		p, err := Place(tensors, o)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if best == nil || p.StepReads < best.StepReads {
			best = p
		}
	}
	if best == nil {
		if first == nil {
			first = &PlacementError{Reason: "a placement needs the memory of at least one rank"}
		}
		return nil, first
	}
	return best, nil
}
