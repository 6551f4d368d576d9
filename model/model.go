package model

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/mlx"
)

// ErrCacheBroken is returned for a Cache used after a forward pass that
// failed part-way through writing it.
var ErrCacheBroken = errors.New("model: the cache was left incomplete by a failed step: start a new one")

// arch is one architecture's forward pass.
type arch interface {
	// forward maps ids [1, L] to logits [1, L, vocab], reading and
	// writing caches when not nil.
	forward(s *scope, ids *mlx.Array, caches []*kvCache, t *tp) *mlx.Array
	numLayers() int
}

// Model is a loaded model on this rank: its config, the rank's arrays
// bound to the layers of its architecture, and the group it computes with.
// Every method runs its MLX work in one trip to the MLX thread; a Model is
// safe for use by one goroutine at a time.
type Model struct {
	Config *Config
	arch   arch
	tp     *tp
	group  *jaccl.Group
	owned  []*mlx.Array
	// elemSize is the bytes of one activation element: the size of the
	// final norm's dtype, in which the hidden states flow.
	elemSize int64
}

// Options configure Load.
type Options struct {
	// Group is the tensor-parallel group; nil runs on one rank.
	Group *jaccl.Group
	// Loader configures the shard loader (memory guard, strategy,
	// workers). Its rank, world size and rules are set from Group and the
	// config.
	Loader loader.Options
	// Logger receives a line per loaded section; nil is silent.
	Logger *slog.Logger
	// Placement, when set, runs the model as a pipeline (see
	// loader.Place): this rank loads and runs its stage's layers only,
	// with its slice within the stage. It must be for Group's size.
	Placement *loader.Placement
}

// Rules returns the loader rules that shard c's checkpoint as mlx-lm's
// shard() does.
func (c *Config) Rules() *loader.RuleSet {
	if c.Arch == DeepSeekV3 {
		return loader.DeepSeekV3Rules(c.NumAttentionHeads)
	}
	return loader.LlamaRules(c.NumAttentionHeads, c.NumKeyValueHeads)
}

// Load reads dir's config.json and loads this rank's shard of the
// checkpoint with package loader (one section at a time, the rank's bytes
// only), then binds the arrays to the model's layers. Towers a text model
// does not use (Kimi K2.5's vision tower) are freed as they arrive.
func Load(ctx context.Context, dir string, o Options) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	lo := o.Loader
	lo.Rank, lo.WorldSize = 0, 1
	if o.Group != nil {
		lo.Rank, lo.WorldSize = o.Group.Rank(), o.Group.Size()
	}
	lo.Rules = cfg.Rules()
	var stage *pipe
	tpGroup := o.Group
	if o.Placement != nil {
		if stage, err = newPipe(o.Placement, o.Group, cfg); err != nil {
			return nil, err
		}
		if tpGroup, stage.chain, err = stageSum(o.Placement, o.Group); err != nil {
			return nil, err
		}
		lo.PlanOptions = o.Placement.PlanOptions(lo.Rank, lo.PlanOptions)
	}
	if lo.Logger == nil {
		lo.Logger = o.Logger
	}
	l, err := loader.Open(dir, lo)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	arrays := map[string]*mlx.Array{}
	for layer, err := range l.Layers(ctx) {
		if err != nil {
			for _, a := range arrays {
				a.Free()
			}
			return nil, err
		}
		if layer.Kind == loader.Tower {
			layer.Free() // not the language model's: free it at once
			continue
		}
		maps.Copy(arrays, layer.Arrays)
	}
	m, err := fromLoaded(cfg, arrays, tpGroup, stage)
	if err != nil {
		return nil, err
	}
	if o.Logger != nil {
		o.Logger.Info("model loaded", "model_type", cfg.ModelType, "layers", cfg.NumHiddenLayers,
			"rank", lo.Rank, "ranks", lo.WorldSize, "tensors", len(arrays))
	}
	return m, nil
}

// FromLoaded is New for the arrays a loader yields for this rank of g,
// names as in the checkpoint: the tensors outside the language model
// (kimi_k25's vision tower and projector, which mlx-lm drops too) are
// freed, and cfg.Prefix is taken off the others. The Model owns every array
// given; on an error they are all freed.
func FromLoaded(cfg *Config, arrays map[string]*mlx.Array, g *jaccl.Group) (*Model, error) {
	return fromLoaded(cfg, arrays, g, nil)
}

// fromLoaded is FromLoaded for one pipeline stage when st is set; g is
// then the stage's tensor-parallel group, nil where st sums over the stage
// by its chain.
func fromLoaded(cfg *Config, arrays map[string]*mlx.Array, g *jaccl.Group, st *pipe) (*Model, error) {
	kept := make(map[string]*mlx.Array, len(arrays))
	for name, a := range arrays {
		if cfg.Prefix != "" {
			if !strings.HasPrefix(name, cfg.Prefix) {
				a.Free()
				continue
			}
			name = strings.TrimPrefix(name, cfg.Prefix)
		}
		kept[name] = a
	}
	m, err := newModel(cfg, kept, g, st)
	if err != nil {
		for _, a := range kept {
			a.Free()
		}
		return nil, err
	}
	return m, nil
}

// New binds a rank's arrays (names without cfg.Prefix, as loader yields
// them for this rank of g) to cfg's architecture. The Model takes
// ownership of every array, used or not: Free releases them. On an error
// the arrays are left to the caller.
func New(cfg *Config, arrays map[string]*mlx.Array, g *jaccl.Group) (*Model, error) {
	return newModel(cfg, arrays, g, nil)
}

// newModel is New for one pipeline stage when st is set; g is then the
// stage's tensor-parallel group, nil where st sums over the stage by its
// chain.
func newModel(cfg *Config, arrays map[string]*mlx.Array, g *jaccl.Group, st *pipe) (*Model, error) {
	m := &Model{Config: cfg, group: g}
	n := 1
	if g != nil && g.Size() > 1 {
		n = g.Size()
		m.tp = &tp{g: g.MLX(), stream: g.Stream(), n: n}
	}
	b := &binder{cfg: cfg, arrays: arrays, used: map[string]bool{}}
	if st != nil {
		if m.tp == nil {
			m.tp = &tp{n: 1}
		}
		if st.chain != nil {
			n = st.chain.k
			m.tp.n, m.tp.chain = n, st.chain
		}
		m.tp.pp = st
		b.skip = func(name string) bool { return !st.holds(name) }
		w, ok := arrays[fmt.Sprintf("model.layers.%d.input_layernorm.weight", st.first)]
		if !ok {
			return nil, fmt.Errorf("model: stage %d has no input_layernorm of its first layer %d: load it with its placement", st.stage.Index, st.first)
		}
		st.dtype = w.Dtype()
	}
	var made []*mlx.Array
	err := mlx.Do(func() error {
		s := &scope{}
		var err error
		switch cfg.Arch {
		case DeepSeekV3:
			m.arch, err = newDeepSeek(s, b, n)
		default:
			m.arch, err = newLlama(s, b, n)
		}
		if err != nil {
			s.release()
			return err
		}
		// The rotary frequencies are the only arrays a model makes; keep
		// them, evaluated, with the weights.
		made = ropeArrays(m.arch)
		if len(made) > 0 {
			if err := mlx.Eval(made...); err != nil {
				s.release()
				return err
			}
		}
		s.release(made...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var unused []string
	for name := range arrays {
		// mlx-lm's sanitize drops these: precomputed rotary frequencies,
		// and DeepSeek-V3's multi-token prediction layer, which it knows as
		// layer 61.
		dropped := strings.Contains(name, "rotary_emb.inv_freq") ||
			(cfg.Arch == DeepSeekV3 && strings.HasPrefix(name, "model.layers.61."))
		if !b.used[name] && !dropped {
			unused = append(unused, name)
		}
		m.owned = append(m.owned, arrays[name])
	}
	if len(unused) > 0 {
		// mlx-lm loads strictly: a tensor no layer takes is an error there
		// too, and usually means a config that does not match the files.
		mlx.FreeAll(made...)
		m.owned = nil
		return nil, fmt.Errorf("model: %d tensors of the checkpoint belong to no layer of %s, e.g. %q: does config.json match the weights?", len(unused), cfg.ModelType, unused[0])
	}
	m.owned = append(m.owned, made...)
	m.elemSize = 4
	if w, ok := arrays["model.norm.weight"]; ok {
		m.elemSize = int64(w.Dtype().Size())
	}
	return m, nil
}

func ropeArrays(a arch) []*mlx.Array {
	if r, ok := a.(interface{ ropeFreqs() *mlx.Array }); ok && r.ropeFreqs() != nil {
		return []*mlx.Array{r.ropeFreqs()}
	}
	return nil
}

// Free releases the model's arrays.
func (m *Model) Free() {
	mlx.FreeAll(m.owned...)
	m.owned = nil
}

// Group returns the group the model computes with (nil for one rank).
func (m *Model) Group() *jaccl.Group { return m.group }

// NewCache returns an empty KV cache for this model.
func (m *Model) NewCache() *Cache {
	c := &Cache{layers: make([]*kvCache, m.arch.numLayers())}
	for i := range c.layers {
		c.layers[i] = &kvCache{}
	}
	return c
}

// Forward builds the forward pass of ids through the model, writing the
// cache when c is not nil, and returns the logits [1, len(ids), vocab],
// lazy: the caller evaluates and frees them. The whole graph is built in
// one trip to the MLX thread and every intermediate handle is released
// before Forward returns. (A pipeline stage of several ranks over ring or
// jaccl evaluates its within-stage sums as it builds the graph: see the
// package documentation.)
func (m *Model) Forward(ids []int, c *Cache) (*mlx.Array, error) {
	var out *mlx.Array
	err := mlx.Do(func() error {
		var err error
		out, _, err = m.forwardLocked(ids, c, nil)
		return err
	})
	return out, err
}

// forwardLocked is Forward on the MLX thread; post, when set, maps the
// logits to more arrays the step keeps (returned beside the logits),
// inside the same scope.
func (m *Model) forwardLocked(ids []int, c *Cache, post func(s *scope, logits *mlx.Array) []*mlx.Array) (*mlx.Array, []*mlx.Array, error) {
	if err := m.checkIDs(ids); err != nil {
		return nil, nil, err
	}
	return m.run(func(s *scope) *mlx.Array { return s.ids(ids) }, c, post)
}

// checkIDs refuses no ids, or ids outside the vocabulary.
func (m *Model) checkIDs(ids []int) error {
	if len(ids) == 0 {
		return errors.New("model: no token ids to run")
	}
	for _, id := range ids {
		if id < 0 || id >= m.Config.VocabSize {
			return fmt.Errorf("model: token id %d outside the vocabulary of %d", id, m.Config.VocabSize)
		}
	}
	return nil
}

func (m *Model) run(input func(s *scope) *mlx.Array, c *Cache, post func(s *scope, logits *mlx.Array) []*mlx.Array) (*mlx.Array, []*mlx.Array, error) {
	var caches []*kvCache
	if c != nil {
		if c.broken {
			return nil, nil, ErrCacheBroken
		}
		caches = c.layers
	}
	s := &scope{}
	logits := m.arch.forward(s, input(s), caches, m.tp)
	keep := []*mlx.Array{logits}
	var extra []*mlx.Array
	if post != nil && s.err == nil {
		extra = post(s, logits)
		keep = append(keep, extra...)
	}
	if c != nil {
		keep = append(keep, c.arrays()...)
	}
	if s.err != nil {
		if c != nil {
			c.broken = true
		}
		s.release()
		return nil, nil, s.err
	}
	s.release(keep...)
	if c != nil {
		c.dropOld()
	}
	return logits, extra, nil
}

// Logits runs the full forward pass of ids without a cache, as mlx-lm's
// model(ids) does, and returns the logits of every position, row-major
// [len(ids), vocab] in float32.
func (m *Model) Logits(ctx context.Context, ids []int) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logits, err := m.Forward(ids, nil)
	if err != nil {
		return nil, err
	}
	defer logits.Free()
	f, err := mlx.AsType(logits, mlx.Float32)
	if err != nil {
		return nil, err
	}
	defer f.Free()
	return mlx.ToSlice[float32](f)
}
