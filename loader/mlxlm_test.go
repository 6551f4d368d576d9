package loader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// mlxlmShardRank runs on every rank of a ring job. For each checkpoint
// directory it loads the model with mlx-lm's own load_model (sanitize
// included), hashes every parameter, calls the model's own
// shard(group) and hashes every parameter again. A parameter's hash is the
// SHA-256 of "dtype shape\n" followed by its row-major bytes, as
// paramDigest computes it in Go.
const mlxlmShardRank = `
import hashlib, json, os, sys
from pathlib import Path
os.environ["HF_HUB_OFFLINE"] = "1"
import numpy as np
import mlx.core as mx
from mlx.utils import tree_flatten
from mlx_lm.utils import load_model

out, dirs = sys.argv[1], sys.argv[2:]
group = mx.distributed.init(strict=True, backend="ring")
rank, size = group.rank(), group.size()

def digests(model):
    params = dict(tree_flatten(model.parameters()))
    mx.eval(list(params.values()))
    res = {}
    for name, a in params.items():
        raw = a.view(mx.uint16) if a.dtype == mx.bfloat16 else a
        head = "%s %s\n" % (str(a.dtype).removeprefix("mlx.core."), ",".join(str(d) for d in a.shape))
        res[name] = hashlib.sha256(head.encode() + np.array(raw).tobytes()).hexdigest()
    return res

report = []
for d in dirs:
    model, _ = load_model(Path(d), lazy=True)
    whole = digests(model)
    model.shard(group)
    report.append({"whole": whole, "shard": digests(model)})
with open(os.path.join(out, "rank%d.json" % rank), "w") as f:
    json.dump({"rank": rank, "size": size, "models": report}, f)
`

// mlxlmDropped are the prefixes of the tensors mlx-lm's kimi_k25 sanitize
// drops (the vision tower and its projector); the loader loads them,
// replicated.
var mlxlmDropped = []string{"vision_tower.", "vision_model.", "multi_modal_projector.", "mm_projector."}

// mlxlmDigests is what one rank of mlx-lm reported for one checkpoint.
type mlxlmDigests struct {
	Whole map[string]string `json:"whole"`
	Shard map[string]string `json:"shard"`
}

// paramDigest hashes an array as mlxlmShardRank does: dtype, shape, bytes.
func paramDigest(t *testing.T, a *mlx.Array) string {
	t.Helper()
	b, err := a.Bytes()
	require.NoError(t, err)
	dims := make([]string, 0, len(a.Shape()))
	for _, d := range a.Shape() {
		dims = append(dims, fmt.Sprint(d))
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", a.Dtype(), strings.Join(dims, ","))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// runMLXLMShard starts n ranks of mlxlmShardRank over ring with the
// project's launcher and returns, per rank, the digests for each directory.
func runMLXLMShard(t *testing.T, n int, dirs ...string) [][]mlxlmDigests {
	t.Helper()
	py := testenv.Python(t)
	out := t.TempDir()
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := cluster.Launch(ctx, cluster.LaunchConfig{
		Command: append([]string{py, "-c", mlxlmShardRank, out}, dirs...), N: n,
		Env:    []string{"PYTHONDONTWRITEBYTECODE=1"},
		Stdout: &log, Stderr: &log, Grace: 2 * time.Second,
	})
	require.NoError(t, err, log.String())
	ranks := make([][]mlxlmDigests, n)
	for r := range n {
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("rank%d.json", r)))
		require.NoError(t, err, log.String())
		var rep struct {
			Rank, Size int
			Models     []mlxlmDigests
		}
		require.NoError(t, json.Unmarshal(b, &rep))
		require.Equal(t, r, rep.Rank)
		require.Equal(t, n, rep.Size)
		require.Len(t, rep.Models, len(dirs))
		ranks[r] = rep.Models
	}
	return ranks
}

// goDigests loads one rank with o and hashes every array: those mlx-lm
// keeps, and apart those it drops.
func goDigests(t *testing.T, dir string, o Options, sanitize func(*testing.T, map[string]*mlx.Array)) (kept, dropped map[string]string) {
	t.Helper()
	o.Guard = bigGuard(t).Guard
	l, err := Open(dir, o)
	require.NoError(t, err)
	defer l.Close()
	arrays, err := l.LoadAll(context.Background())
	require.NoError(t, err)
	if sanitize != nil {
		sanitize(t, arrays)
	}
	kept, dropped = map[string]string{}, map[string]string{}
	for name, a := range arrays {
		if slices.ContainsFunc(mlxlmDropped, func(p string) bool { return strings.HasPrefix(name, p) }) {
			dropped[name] = paramDigest(t, a)
		} else {
			kept[name] = paramDigest(t, a)
		}
		a.Free()
	}
	require.NoError(t, mlx.ClearCache())
	return kept, dropped
}

// sameDigests reports, in a few lines, every parameter whose digest
// differs or that only one side has.
func sameDigests(t *testing.T, want, got map[string]string, what string) {
	t.Helper()
	var bad []string
	for name, w := range want {
		if g, ok := got[name]; !ok {
			bad = append(bad, name+": missing from the loader")
		} else if g != w {
			bad = append(bad, name+": different dtype, shape or bytes")
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			bad = append(bad, name+": not a parameter of the mlx-lm model")
		}
	}
	slices.Sort(bad)
	assert.Empty(t, bad, "%s: %d of %d parameters differ from mlx-lm", what, len(bad), len(want))
}

// mlxlmKimi is a small Kimi K2.5 as mlx-lm's converter stores it, with
// every split axis divisible by 4: 4 heads, intermediate sizes of 4
// quantization groups and more.
func mlxlmKimi() ckptgen.Spec {
	s := ckptgen.KimiK25().Scale(1.0 / 16)
	s.Vocab = 512
	s.Layers = 3
	s.Experts = 4
	s.ActiveExperts = 2
	s.Intermediate = 512
	s.MoEIntermediate = 256
	s.VisionLayers = 1
	s.Files = 3
	return s
}

// mlxlmLlama is a small Llama with grouped-query attention (8 heads, 4
// key-value heads) that divides into 4 ranks.
func mlxlmLlama() ckptgen.Spec {
	s := ckptgen.Llama().Scale(1.0 / 16)
	s.Vocab = 512
	s.Layers = 2
	s.Heads, s.KVHeads, s.HeadDim = 8, 4, 32
	s.Hidden = s.Heads * s.HeadDim
	s.Intermediate = 512
	s.Files = 2
	return s
}

func TestEveryStrategyShardsEveryParameterAsMLXLMShardsIt(t *testing.T) {
	requireMLX(t)
	if ok, err := mlx.DistributedAvailable("ring"); err != nil || !ok {
		unavailable(t, "MLX has no ring back-end: %v", err)
	}
	kimi := mlxlmKimi()
	models := []struct {
		name string
		spec ckptgen.Spec
		dir  string
		// sanitize does to the loader's arrays what mlx-lm's sanitize
		// does to the checkpoint's, when the two differ.
		sanitize func(*testing.T, map[string]*mlx.Array)
	}{
		{name: "kimi k2.5 layout", spec: kimi},
		{name: "llama", spec: mlxlmLlama()},
		{name: "kimi k2.5 layout with kv_b_proj", spec: kimi, sanitize: func(t *testing.T, arrays map[string]*mlx.Array) {
			splitKVB(t, arrays, kimi.QKNopeHeadDim, kimi.VHeadDim)
		}},
	}
	var dirs []string
	for i := range models {
		if models[i].sanitize != nil {
			models[i].dir = withKVB(t, models[0].dir, models[i].spec)
		} else {
			models[i].dir = t.TempDir()
			_, err := ckptgen.Write(context.Background(), models[i].dir, models[i].spec, &ckptgen.Options{Seed: 21})
			require.NoError(t, err)
		}
		dirs = append(dirs, models[i].dir)
	}
	// What mlx-lm drops has no reference there; it must come whole, as
	// MLX's own loader reads it on one rank.
	whole := make([]map[string]string, len(models))
	for m, model := range models {
		_, whole[m] = goDigests(t, model.dir, Options{PlanOptions: PlanOptions{Strategy: ChunkedEval}, Read: ReadMLX}, model.sanitize)
	}
	require.NotEmpty(t, whole[0], "the Kimi checkpoint has a vision tower")
	for _, n := range []int{2, 4} {
		ranks := runMLXLMShard(t, n, dirs...)
		for m, model := range models {
			for rank := range n {
				ref := ranks[rank][m]
				require.NotEmpty(t, ref.Shard)
				cases := []struct {
					name  string
					dir   string
					o     PlanOptions
					read  ReadMode
					whole bool // the strategy shards nothing
				}{
					{name: "direct with mmap", o: PlanOptions{Strategy: Direct}, read: ReadMmap},
					{name: "direct with pread", o: PlanOptions{Strategy: Direct}, read: ReadPread},
					{name: "eval-shard-eval", o: PlanOptions{Strategy: EvalShardEval}},
					{name: "eval-shard-eval with MLX's loader", o: PlanOptions{Strategy: EvalShardEval}, read: ReadMLX},
					{name: "chunked eval", o: PlanOptions{Strategy: ChunkedEval}, whole: true},
					{name: "chunked eval with MLX's loader", o: PlanOptions{Strategy: ChunkedEval}, read: ReadMLX, whole: true},
					{name: "direct from the resharded directory", dir: reshardFor(t, model.dir, rank, n)},
				}
				for _, c := range cases {
					t.Run(fmt.Sprintf("%s, rank %d of %d, %s", model.name, rank, n, c.name), func(t *testing.T) {
						o := Options{PlanOptions: c.o, Read: c.read}
						o.Rank, o.WorldSize = rank, n
						dir := model.dir
						if c.dir != "" {
							dir = c.dir
						}
						want := ref.Shard
						if c.whole {
							want = ref.Whole
						}
						kept, dropped := goDigests(t, dir, o, model.sanitize)
						sameDigests(t, want, kept, model.name)
						assert.Equal(t, whole[m], dropped, "the tensors mlx-lm drops are loaded whole")
					})
				}
			}
		}
	}
}

// reshardFor writes rank's shard of src, split by the rules detected from
// its names, to a fresh directory.
func reshardFor(t *testing.T, src string, rank, n int) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "shard")
	_, err := Reshard(context.Background(), src, dst, PlanOptions{Rank: rank, WorldSize: n}, nil)
	require.NoError(t, err)
	return dst
}

// withKVB copies a converted Kimi checkpoint with attention as Hugging
// Face stores it: each layer's embed_q and unembed_out replaced by one
// bfloat16 kv_b_proj [heads × (qk_nope + v_head), kv_lora] of random
// values, which mlx-lm's sanitize splits per head on load. It returns the
// new directory.
func withKVB(t *testing.T, src string, s ckptgen.Spec) string {
	t.Helper()
	d, err := safetensors.OpenDir(src)
	require.NoError(t, err)
	defer d.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	var tensors []safetensors.TensorData
	for _, ti := range d.Tensors() {
		name := ti.Name
		if strings.Contains(name, ".self_attn.unembed_out.") {
			continue
		}
		if strings.HasSuffix(name, ".self_attn.embed_q.weight") {
			rows, cols := int64(s.Heads*(s.QKNopeHeadDim+s.VHeadDim)), int64(s.KVLoRARank)
			b := make([]byte, 0, 2*rows*cols)
			for range rows * cols {
				w := uint16(math.Float32bits(float32(rng.NormFloat64()*0.02)) >> 16)
				b = append(b, byte(w), byte(w>>8))
			}
			tensors = append(tensors, safetensors.TensorData{Name: strings.TrimSuffix(name, "embed_q.weight") + "kv_b_proj.weight",
				Dtype: safetensors.BF16, Shape: []int64{rows, cols}, Data: b})
			continue
		}
		if strings.Contains(name, ".self_attn.embed_q.") {
			continue
		}
		_, f, ok := d.Tensor(name)
		require.True(t, ok)
		data, err := f.Data(name)
		require.NoError(t, err)
		tensors = append(tensors, safetensors.TensorData{Name: name, Dtype: ti.Dtype, Shape: ti.Shape, Data: slices.Clone(data)})
	}
	dst := t.TempDir()
	require.NoError(t, safetensors.WriteDir(dst, [][]safetensors.TensorData{tensors}, map[string]string{"format": "mlx"}))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), "model.safetensors") {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644))
		}
	}
	return dst
}

// splitKVB replaces each unquantized kv_b_proj of the arrays with the
// embed_q and unembed_out mlx-lm's sanitize makes of it: rows viewed as
// [heads, qk_nope + v_head, kv_lora], embed_q the first qk_nope rows of
// each head transposed, unembed_out the rest. The heads are the rank's.
func splitKVB(t *testing.T, arrays map[string]*mlx.Array, nope, v int) {
	t.Helper()
	for name, w := range arrays {
		base, ok := strings.CutSuffix(name, "kv_b_proj.weight")
		if !ok {
			continue
		}
		shape := w.Shape()
		heads, lora := shape[0]/(nope+v), shape[1]
		r, err := mlx.Reshape(w, heads, nope+v, lora)
		require.NoError(t, err)
		k, err := mlx.Slice(r, []int{0, 0, 0}, []int{heads, nope, lora}, nil)
		require.NoError(t, err)
		kt, err := mlx.Transpose(k, 0, 2, 1)
		require.NoError(t, err)
		embed, err := mlx.Contiguous(kt)
		require.NoError(t, err)
		vv, err := mlx.Slice(r, []int{0, nope, 0}, []int{heads, nope + v, lora}, nil)
		require.NoError(t, err)
		unembed, err := mlx.Contiguous(vv)
		require.NoError(t, err)
		require.NoError(t, mlx.Eval(embed, unembed))
		mlx.FreeAll(w, r, k, kt, vv)
		delete(arrays, name)
		arrays[base+"embed_q.weight"], arrays[base+"unembed_out.weight"] = embed, unembed
	}
}
