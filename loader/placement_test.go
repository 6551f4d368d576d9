package loader

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/safetensors"
)

// described turns a model description into the tensor list a plan takes.
func described(t testing.TB, s ckptgen.Spec) []safetensors.TensorInfo {
	t.Helper()
	require.NoError(t, s.Validate())
	var ts []safetensors.TensorInfo
	for _, d := range s.Tensors() {
		dt, err := safetensors.ParseDtype(d.Dtype)
		require.NoError(t, err)
		ts = append(ts, safetensors.TensorInfo{Name: d.Name, Dtype: dt, Shape: d.Shape, End: d.Bytes})
	}
	return ts
}

// smallVocabLlama is Llama 3.1 8B's layers with a small vocabulary, so
// that the embeddings and head weigh little beside the layers.
func smallVocabLlama() ckptgen.Spec {
	s := ckptgen.Llama()
	s.Vocab = 1024
	return s
}

func totalResident(t testing.TB, ts []safetensors.TensorInfo, rules *RuleSet) int64 {
	t.Helper()
	p, err := NewPlan(ts, PlanOptions{Rules: rules})
	require.NoError(t, err)
	return p.Resident
}

// checkPlacement asserts what every placement must be: stages of
// consecutive layers covering the model once, the embeddings first and the
// head last, every stage's peak within its memory, and every rank's own
// loader plan (through PlanOptions) agreeing with the stage's figures.
func checkPlacement(t *testing.T, ts []safetensors.TensorInfo, p *Placement, base PlanOptions) {
	t.Helper()
	require.Len(t, p.Stages, p.PP)
	next := 0
	for s, st := range p.Stages {
		assert.Equal(t, next, st.FirstLayer, "stage %d starts where the previous ended", s)
		assert.Equal(t, st.EndLayer-st.FirstLayer, st.Layers, "stage %d", s)
		assert.Positive(t, st.Layers, "stage %d holds a layer", s)
		next = st.EndLayer
		if s == 0 {
			assert.True(t, st.Embeddings, "the first stage holds the embeddings")
		} else if s < p.PP-1 {
			assert.False(t, st.Embeddings, "a middle stage %d holds no embeddings", s)
		}
		assert.Equal(t, s == p.PP-1, st.Head, "stage %d head", s)
		assert.LessOrEqual(t, st.Peak, st.Memory, "stage %d fits", s)
		assert.Len(t, st.Ranks, p.TP)
		for _, r := range st.Ranks {
			pl, err := NewPlan(ts, p.PlanOptions(r, base))
			require.NoError(t, err)
			assert.Equal(t, st.Weights, pl.Resident, "rank %d: the loader's resident is the stage's weights", r)
			assert.Equal(t, st.LoadPeak, pl.Peak, "rank %d: the loader's peak is the stage's load peak", r)
			var layers int
			for _, sp := range pl.Sections {
				if sp.Kind == Block {
					layers++
					assert.True(t, sp.Layer >= st.FirstLayer && sp.Layer < st.EndLayer, "rank %d loads layer %d outside its stage", r, sp.Layer)
				}
				assert.NotEqual(t, Tower, sp.Kind, "rank %d loads no tower", r)
			}
			assert.Equal(t, st.Layers, layers, "rank %d loads its stage's layers", r)
		}
	}
	assert.Equal(t, p.Layers, next, "the stages cover every layer")
}

func TestPlacementFollowsUnevenMemoryWhereItBinds(t *testing.T) {
	ts := described(t, smallVocabLlama())
	rules := LlamaRules(32, 8)
	need := totalResident(t, ts, rules)
	for _, shares := range [][]int64{{2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {3, 1}, {1, 1, 1, 1}} {
		t.Run(fmt.Sprintf("ranks told %v of a total 10%% above the model", shares), func(t *testing.T) {
			var sum int64
			for _, s := range shares {
				sum += s
			}
			total := need * 11 / 10
			mem := make([]int64, len(shares))
			for i, s := range shares {
				mem[i] = total * s / sum
			}
			base := PlanOptions{Rules: rules}
			p, err := Place(ts, PlacementOptions{PlanOptions: base, Memory: mem})
			require.NoError(t, err)
			checkPlacement(t, ts, p, base)
			for i, st := range p.Stages {
				want := float64(p.Layers) * float64(shares[i]) / float64(sum)
				assert.InDelta(t, want, float64(st.Layers), 1, "stage %d: layers in proportion to memory", i)
			}
		})
	}
}

func TestPlacementEvensOutTheStagesWhenMemoryIsAmple(t *testing.T) {
	ts := described(t, smallVocabLlama())
	base := PlanOptions{Rules: LlamaRules(32, 8)}
	big := int64(1e12)
	p, err := Place(ts, PlacementOptions{PlanOptions: base, Memory: []int64{4 * big, big, big, big}})
	require.NoError(t, err)
	checkPlacement(t, ts, p, base)
	for i, st := range p.Stages {
		assert.Equal(t, 8, st.Layers, "stage %d: 32 layers in 4 stages of equal speed", i)
	}
}

// TestPlacementIsTheLightestBottleneck compares the placement with every
// split of the layers, each stage's peak taken from the loader's own plan
// of that stage.
func TestPlacementIsTheLightestBottleneck(t *testing.T) {
	s := smallVocabLlama()
	s.Layers = 10
	s.Vocab = 32768 // a head heavier than a layer
	ts := described(t, s)
	rules := LlamaRules(32, 8)
	need := totalResident(t, ts, rules)
	const kv, act = int64(30e6), int64(20e6)
	cases := []struct {
		name string
		mem  []int64
		tp   int
		tied bool
	}{
		{"three equal ranks", []int64{need, need, need}, 1, false},
		{"a tight 2:1:1", []int64{need * 7 / 10, need * 35 / 100, need * 35 / 100}, 1, false},
		{"a tight 1:1:2 with tied embeddings", []int64{need * 35 / 100, need * 35 / 100, need * 7 / 10}, 1, true},
		{"two stages of TP=2, one small rank", []int64{need, need / 3, need, need}, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := PlanOptions{Rules: rules}
			o := PlacementOptions{PlanOptions: base, Memory: c.mem, TP: c.tp, KVPerLayer: kv, Activations: act, TiedEmbeddings: c.tied}
			p, err := Place(ts, o)
			require.NoError(t, err)
			checkPlacement(t, ts, p, base)
			pp := len(c.mem) / c.tp
			best := int64(-1)
			// Every way to cut layers 0..9 into pp non-empty runs.
			var walk func(stage, first int, worst int64)
			walk = func(stage, first int, worst int64) {
				if stage == pp {
					if first == s.Layers && (best < 0 || worst < best) {
						best = worst
					}
					return
				}
				for end := first + 1; end <= s.Layers-(pp-1-stage); end++ {
					if stage == pp-1 && end != s.Layers {
						continue
					}
					emb := stage == 0 || (stage == pp-1 && c.tied)
					head := stage == pp-1
					pl, err := NewPlan(ts, PlanOptions{Rules: rules, WorldSize: c.tp, Keep: func(sec Section) bool {
						return sec.Kind == Before && emb || sec.Kind == After && head || sec.Kind == Block && sec.Layer >= first && sec.Layer < end
					}})
					require.NoError(t, err)
					peak := max(pl.Peak, pl.Resident+kv*int64(end-first)+act)
					if peak > min(c.mem[stage*c.tp], c.mem[stage*c.tp+c.tp-1]) {
						continue
					}
					var cost int64
					for _, sp := range pl.Sections {
						if sp.Kind == Block || sp.Kind == After || sp.Kind == Before && stage == pp-1 && c.tied {
							cost += sp.Shard
						}
					}
					walk(stage+1, end, max(worst, cost))
				}
			}
			walk(0, 0, 0)
			require.Positive(t, best, "some split fits")
			assert.Equal(t, best, p.Stages[p.Bottleneck].Cost, "the placement's slowest stage is the lightest possible")
		})
	}
}

func TestPlacementRefusesWhatCannotFit(t *testing.T) {
	kimi := described(t, ckptgen.KimiK25())
	rules := DeepSeekV3Rules(64)
	cases := []struct {
		name string
		mem  []int64
		tp   int
		is   error
		msg  string
	}{
		{"Kimi K2.5 on two 256 GB nodes", []int64{256e9, 256e9}, 1, ErrNoPlacement, "no placement of 61 layers in 2 stages"},
		{"a stage too small for one layer", []int64{512e9, 512e9, 1e9}, 1, ErrNoPlacement, "stage 2 (ranks 2-2) peaks at"},
		{"a TP degree that does not divide the world", []int64{512e9, 512e9, 512e9}, 2, ErrNoPlacement, "TP=2 does not divide a world of 3 ranks"},
		{"more stages than layers", make([]int64, 62), 1, ErrNoPlacement, "61 layers cannot make 62 pipeline stages"},
		{"no memory given", nil, 1, ErrNoPlacement, "at least one rank"},
		{"64 heads over TP=3", []int64{512e9, 512e9, 512e9}, 3, nil, "cannot be split into 3 parts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Place(kimi, PlacementOptions{PlanOptions: PlanOptions{Rules: rules}, Memory: c.mem, TP: c.tp})
			require.Error(t, err)
			if c.is != nil {
				assert.ErrorIs(t, err, c.is)
			}
			assert.Contains(t, err.Error(), c.msg)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestPlacementOfKimiK25OnUnevenNodesExplainsItself(t *testing.T) {
	kimi := described(t, ckptgen.KimiK25())
	base := PlanOptions{Rules: DeepSeekV3Rules(64), PageSize: 16384}
	p, err := Place(kimi, PlacementOptions{PlanOptions: base, Memory: []int64{460e9, 230e9, 230e9}})
	require.NoError(t, err)
	checkPlacement(t, kimi, p, base)
	assert.Greater(t, p.Stages[0].Layers, p.Stages[1].Layers, "the larger node holds more layers")

	var b strings.Builder
	require.NoError(t, p.WriteTable(&b))
	assert.Contains(t, b.String(), "TP=1 × PP=3 on 3 ranks")
	assert.Contains(t, b.String(), fmt.Sprintf("stage %d is the slowest", p.Bottleneck))
	js, err := p.JSON()
	require.NoError(t, err)
	var back struct{ Stages []Stage }
	require.NoError(t, json.Unmarshal(js, &back))
	assert.Equal(t, p.Stages, back.Stages, "the JSON holds every stage's figures")
	assert.True(t, errors.Is(&PlacementError{}, ErrNoPlacement))
}

func TestAStageLoadsItsLayersAndPeaksAsPlanned(t *testing.T) {
	requireMLX(t)
	// hidden 512, 8 layers of bf16, a head of 4096 tokens: about 40 MB.
	dir := llamaLike(11, 512, 1536, 8, 4096).write(t, 3)
	d, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	ts := d.Tensors()
	require.NoError(t, d.Close())
	rules := LlamaRules(8, 4)
	need := totalResident(t, ts, rules)
	cases := []struct {
		name string
		mem  []int64
		tp   int
		s    Strategy
	}{
		{"three ranks told 2:1:1, direct", []int64{need * 6 / 10, need * 3 / 10, need * 3 / 10}, 1, Direct},
		{"three ranks told 2:1:1, eval-shard-eval", []int64{need * 7 / 10, need * 35 / 100, need * 35 / 100}, 1, EvalShardEval},
		{"TP=2 × PP=2, direct", []int64{need, need, need, need}, 2, Direct},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := PlanOptions{Rules: rules, Strategy: c.s}
			p, err := Place(ts, PlacementOptions{PlanOptions: base, Memory: c.mem, TP: c.tp})
			require.NoError(t, err)
			for r := range c.mem {
				st := p.StageOf(r)
				o := bigGuard(t)
				o.PlanOptions = p.PlanOptions(r, base)
				m := loadMeasured(t, dir, o)
				off := float64(m.peak-st.LoadPeak) / float64(st.LoadPeak)
				t.Logf("rank %d, stage %d (layers %d-%d): peak measured %d, planned %d (%+.4f%%), read %d of %d",
					r, st.Index, st.FirstLayer, st.EndLayer-1, m.peak, st.LoadPeak, 100*off, m.read, m.plan.Checkpoint)
				assert.InDelta(t, 0, off, 0.02, "rank %d: MLX's peak within 2%% of the stage's planned peak", r)
				assert.InDelta(t, st.Weights, m.resident, 0.001*float64(st.Weights), "rank %d: resident", r)
				if c.s == Direct {
					assert.Less(t, m.read, m.plan.Checkpoint*7/10, "rank %d reads its stage's bytes only", r)
				}
			}
		})
	}
}

func TestAStageThatCannotFitIsRefusedBeforeAnyRead(t *testing.T) {
	requireMLX(t)
	dir := llamaLike(12, 256, 512, 4, 1024).write(t, 2)
	d, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	ts := d.Tensors()
	require.NoError(t, d.Close())
	base := PlanOptions{Rules: LlamaRules(8, 4)}
	need := totalResident(t, ts, base.Rules)
	p, err := Place(ts, PlacementOptions{PlanOptions: base, Memory: []int64{need, need}})
	require.NoError(t, err)
	st := p.StageOf(1)
	// A guard that holds the stage's weights but not its load's peak.
	o := Options{PlanOptions: p.PlanOptions(1, base), Guard: newGuard(t, int64(st.LoadPeak)+(1<<20), 1<<20+1)}
	l, err := Open(dir, o)
	if l != nil {
		l.Close()
	}
	require.ErrorIs(t, err, ErrWontFit)
	o.Guard = newGuard(t, int64(st.LoadPeak)+(2<<20), 1<<20)
	l, err = Open(dir, o)
	require.NoError(t, err, "the stage alone fits where the whole model would not")
	defer l.Close()
	assert.Zero(t, l.BytesRead())
	assert.Less(t, st.LoadPeak, need, "the stage is smaller than the model")
}

func TestPlaceAutoPicksTheLightestStepAmongTheTPDegreesThatSplit(t *testing.T) {
	kimi := described(t, ckptgen.KimiK25())
	base := PlanOptions{Rules: DeepSeekV3Rules(64)}
	cases := []struct {
		name   string
		mem    []int64
		tp, pp int
	}{
		{"Kimi K2.5 on 2×512 GB splits every layer two ways", []int64{512e9, 512e9}, 2, 1},
		{"Kimi K2.5 on 512+256+256 GB, where 64 heads do not split three ways, is a pipeline", []int64{512e9, 256e9, 256e9}, 1, 3},
		{"Kimi K2.5 on 4×512 GB splits every layer four ways", []int64{512e9, 512e9, 512e9, 512e9}, 4, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := PlaceAuto(kimi, PlacementOptions{PlanOptions: base, Memory: c.mem})
			require.NoError(t, err)
			assert.Equal(t, c.tp, p.TP)
			assert.Equal(t, c.pp, p.PP)
			checkPlacement(t, kimi, p, base)
			for tpn := 1; tpn <= len(c.mem); tpn++ {
				if other, err := Place(kimi, PlacementOptions{PlanOptions: base, Memory: c.mem, TP: tpn}); err == nil {
					assert.LessOrEqual(t, p.StepReads, other.StepReads, "no lighter step at TP=%d", tpn)
				}
			}
		})
	}
	_, err := PlaceAuto(kimi, PlacementOptions{PlanOptions: base, Memory: []int64{200e9, 200e9}})
	assert.ErrorIs(t, err, ErrNoPlacement)
}
