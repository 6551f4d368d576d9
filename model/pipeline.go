package model

import (
	"fmt"
	"strings"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// pipe is this rank's place in a pipeline: the stage's layers, its
// neighbours, and the whole group the hidden states and logits travel on.
type pipe struct {
	stage  loader.Stage
	stages int
	// prev is the rank the stage's input comes from, relay the rank of
	// the stage it passes the input on to, next the rank of the next
	// stage the output goes to: ranks in the whole group, -1 for none.
	prev, relay, next int
	// leader is the rank of the last stage that gives the logits.
	leader          bool
	world           *mlx.Group
	stream          *mlx.Stream
	hidden          int
	dtype           mlx.Dtype // of the hidden states received
	keep            func(loader.Section) bool
	first, end      int // the stage's layers
	isFirst, isLast bool
	// chain sums over the stage's ranks where the back-end cannot split
	// the group; nil otherwise.
	chain *chain
}

// newPipe places rank of g in p.
func newPipe(p *loader.Placement, g *jaccl.Group, cfg *Config) (*pipe, error) {
	rank := 0
	if g != nil {
		rank = g.Rank()
		if g.Size() != p.WorldSize {
			return nil, fmt.Errorf("model: the placement is for %d ranks but the group has %d: place the model for this group", p.WorldSize, g.Size())
		}
	} else if p.WorldSize != 1 {
		return nil, fmt.Errorf("model: the placement is for %d ranks but no group was given", p.WorldSize)
	}
	// A DeepSeek-V3 checkpoint may hold one more layer, for multi-token
	// prediction, which the forward pass does not run.
	if p.Layers < cfg.NumHiddenLayers {
		return nil, fmt.Errorf("model: the placement has %d layers but config.json %d: place this checkpoint", p.Layers, cfg.NumHiddenLayers)
	}
	st := p.StageOf(rank)
	last := p.Stages[p.PP-1]
	if cfg.TieWordEmbeddings && !last.Embeddings {
		return nil, fmt.Errorf("model: %s ties its head to the embeddings but the placement leaves them off the last stage: place it with TiedEmbeddings", cfg.ModelType)
	}
	if g != nil {
		if err := checkBackend(p, g.Backend()); err != nil {
			return nil, err
		}
	}
	q := &pipe{stage: *st, stages: p.PP, prev: -1, relay: -1, next: -1, leader: rank%p.TP == 0,
		hidden: cfg.HiddenSize, keep: p.Keep(rank), first: st.FirstLayer, end: st.EndLayer,
		isFirst: st.Index == 0, isLast: st.Index == p.PP-1}
	// The stage's ranks are consecutive, and the ring back-ends reach a
	// rank's neighbours only: the previous stage's last rank hands the
	// hidden states to the stage's first, which relays them along the
	// stage, rank to rank; the stage's last rank hands its output on.
	lastOfStage := rank%p.TP == p.TP-1
	if !q.isFirst {
		q.prev = rank - 1
	}
	if !q.isFirst && !lastOfStage {
		q.relay = rank + 1
	}
	if !q.isLast && lastOfStage {
		q.next = rank + 1
	}
	if g != nil {
		q.world, q.stream = g.MLX(), g.Stream()
	}
	return q, nil
}

// holds says whether the stage holds a tensor (a name without the config's
// prefix).
func (q *pipe) holds(name string) bool { return q.keep(loader.DefaultSections(name)) }

// layers returns the bounds of the layers this rank runs out of n.
func (t *tp) layers(n int) (int, int) {
	if t == nil || t.pp == nil {
		return 0, n
	}
	return t.pp.first, min(t.pp.end, n)
}

// stagePlan scales an inference plan's KV cache to the stage's layers of
// the model's layers.
func (t *tp) stagePlan(p InferencePlan, layers int) InferencePlan {
	if t == nil || t.pp == nil || layers == 0 {
		return p
	}
	first, end := t.layers(layers)
	p.KVPerToken = p.KVPerToken / int64(layers) * int64(end-first)
	p.KVCache = p.KVCache / int64(layers) * int64(end-first)
	p.Total = p.KVCache + p.Activations
	return p
}

// input is the hidden states the stage starts from: the embedded ids on
// the first stage, the previous stage's output on the others.
func (t *tp) input(s *scope, embed *linear, ids *mlx.Array) *mlx.Array {
	if t == nil || t.pp == nil || t.pp.isFirst {
		return s.embed(embed, ids)
	}
	q := t.pp
	L := ids.Shape()[1]
	h := s.do(func() (*mlx.Array, error) {
		return mlx.Recv([]int{1, L, q.hidden}, q.dtype, q.prev, q.world, q.stream)
	})
	if q.relay >= 0 {
		// The relayed array is the one the stage computes on, so that the
		// relay runs before any later send to the same rank.
		h = s.send(h, q.relay, q.world, q.stream)
	}
	return h
}

// passOn ends a stage that is not the last: its last rank sends h on, and
// every rank returns zeros in the logits' shape that depend on its h (the
// send), so that evaluating the step runs it. done is false on the last
// stage, which goes on to the head. Evaluating the cache (a prefill) also
// runs the send: the sent array is kept with the stage's last layer's
// cache.
func (t *tp) passOn(s *scope, h *mlx.Array, caches []*kvCache, vocab int) (logits *mlx.Array, done bool) {
	if t == nil || t.pp == nil || t.pp.isLast {
		return nil, false
	}
	q := t.pp
	if q.next < 0 {
		return t.share(s, s.zerosAfter(h, []int{1, h.Shape()[1], vocab}), false), true
	}
	sent := s.send(h, q.next, q.world, q.stream)
	if caches != nil && s.err == nil {
		_, end := t.layers(len(caches))
		c := caches[end-1]
		if c.sent != nil {
			c.old = append(c.old, c.sent)
		}
		c.sent = sent
	}
	return t.share(s, s.zerosAfter(sent, []int{1, h.Shape()[1], vocab}), false), true
}

// share makes the last stage's logits every rank's: one rank of the last
// stage gives them, every other rank zeros, all summed over the whole
// group (exact: x + 0 is x). Every rank then samples the same token.
func (t *tp) share(s *scope, logits *mlx.Array, give bool) *mlx.Array {
	if t == nil || t.pp == nil || t.pp.stages == 1 {
		return logits
	}
	if !give {
		logits = s.zerosAfter(logits, logits.Shape())
	}
	return s.allSum(logits, t.pp.world, t.pp.stream)
}

// output finishes the last stage's logits for every rank.
func (t *tp) output(s *scope, logits *mlx.Array) *mlx.Array {
	if t == nil || t.pp == nil {
		return logits
	}
	return t.share(s, logits, t.pp.leader)
}

// zerosAfter is zeros of shape in dep's dtype that cannot be computed
// before dep: a comparison of one of dep's elements with itself, false
// even for a NaN, cast and broadcast.
func (s *scope) zerosAfter(dep *mlx.Array, shape []int) *mlx.Array {
	if s.err != nil {
		return nil
	}
	one := s.reshape(s.slice(s.reshape(dep, -1), []int{0}, []int{1}), 1, 1, 1)
	zero := s.astype(s.greater(one, one), dep.Dtype())
	return s.add(s.zeros(shape, dep.Dtype()), zero)
}

// Place places dir's model (its config.json and its shard files' headers;
// no weight is read) on ranks of the given usable memory, for a context of
// n tokens: the stages' KV cache and activations come from PlanInference,
// a tied head puts the embeddings on the last stage too. tp is the ranks
// per stage; 0 lets loader.PlaceAuto choose.
func Place(dir string, memory []int64, tp, n int, strategy loader.Strategy) (*loader.Placement, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	d, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, err
	}
	tensors := d.Tensors()
	d.Close()
	elem := int64(4)
	for _, t := range tensors {
		if strings.HasSuffix(t.Name, "model.norm.weight") {
			elem = int64(t.Dtype.Size())
		}
	}
	o := loader.PlacementOptions{PlanOptions: loader.PlanOptions{Strategy: strategy, Rules: cfg.Rules()}, Memory: memory,
		TiedEmbeddings: cfg.TieWordEmbeddings}
	opts := func(tp int) loader.PlacementOptions {
		o.TP = tp
		if n > 0 {
			ip := cfg.PlanInference(n, 0, tp, elem)
			o.KVPerLayer = ip.KVCache / int64(max(cfg.NumHiddenLayers, 1))
			o.Activations = ip.Activations
		}
		return o
	}
	if tp > 0 {
		return loader.Place(tensors, opts(tp))
	}
	// The KV cache depends on the TP degree: place at each, keep the best.
	var best *loader.Placement
	var first error
	for tp := 1; tp <= len(memory); tp++ {
		if len(memory)%tp != 0 {
			continue
		}
		p, err := loader.Place(tensors, opts(tp))
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
		return nil, first
	}
	return best, nil
}
