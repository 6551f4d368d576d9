package loader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

// numpyShards computes, independently of this package, the SHA-256 of
// every rank's shard of every tensor with numpy: the raw file bytes viewed
// as unsigned integers of the element size, np.split into N along the axis
// per fused segment, concatenated.
const numpyShards = `
import json, struct, sys, hashlib, os
import numpy as np
d, spec, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))["weight_map"]
sizes = {"BOOL":1,"U8":1,"I8":1,"F16":2,"BF16":2,"I16":2,"U16":2,"F32":4,"I32":4,"U32":4,"F64":8,"I64":8,"U64":8}
out = {}
headers = {}
for name, fn in idx.items():
    p = os.path.join(d, fn)
    if p not in headers:
        raw = open(p, "rb").read()
        hl = struct.unpack("<Q", raw[:8])[0]
        headers[p] = (json.loads(raw[8:8+hl]), raw[8+hl:])
    h, data = headers[p]
    e = h[name]
    es = sizes[e["dtype"]]
    b, end = e["data_offsets"]
    a = np.frombuffer(data[b:end], dtype="<u%d" % es).reshape(e["shape"])
    s = spec[name]
    shards = []
    for k in range(n):
        if s["axis"] < 0:
            part = a
        else:
            bounds = s["bounds"]
            segs = [np.split(np.take(a, range(bounds[i], bounds[i+1]), axis=s["axis"]), n, axis=s["axis"])[k] for i in range(len(bounds)-1)]
            part = np.concatenate(segs, axis=s["axis"])
        shards.append(hashlib.sha256(np.ascontiguousarray(part).tobytes()).hexdigest())
    out[name] = shards
print(json.dumps(out))
`

func expectedShards(t *testing.T, dir string, plan *Plan) map[string][]string {
	t.Helper()
	type split struct {
		Axis   int     `json:"axis"`
		Bounds []int64 `json:"bounds"`
	}
	spec := map[string]split{}
	for _, s := range plan.Sections {
		for _, tp := range s.Tensors {
			spec[tp.Name] = split{tp.Split.Axis, tp.Split.Bounds}
		}
	}
	b, err := json.Marshal(spec)
	require.NoError(t, err)
	n := plan.WorldSize
	if plan.Strategy == ChunkedEval {
		n = 1
	}
	var out map[string][]string
	require.NoError(t, json.Unmarshal(testenv.RunPython(t, numpyShards, dir, string(b), fmt.Sprint(n)), &out))
	return out
}

func digest(t *testing.T, a *mlx.Array) string {
	t.Helper()
	b, err := a.Bytes()
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestEveryStrategyGivesEachRankExactlyItsSlicesOfTheFiles(t *testing.T) {
	requireMLX(t)
	kimi := kimiLike(1).write(t, 3)
	llama := llamaLike(2, 64, 128, 2, 96).write(t, 2)
	cases := []struct {
		name  string
		dir   string
		rules *RuleSet
		n     int
	}{
		{"kimi layout, deepseek rules, 2 ranks", kimi, DeepSeekV3Rules(4), 2},
		{"kimi layout, detected rules, 1 rank", kimi, nil, 1},
		{"llama layout, llama rules, 2 ranks", llama, LlamaRules(8, 4), 2},
		{"llama layout, llama rules, 4 ranks", llama, LlamaRules(8, 4), 4},
	}
	for _, c := range cases {
		for _, strategy := range []Strategy{Direct, EvalShardEval, ChunkedEval} {
			// The strategies that hold whole tensors read them with ours
			// or with MLX's own loader.
			modes := []ReadMode{ReadAuto, ReadMLX}
			if strategy == Direct {
				modes = []ReadMode{ReadMmap, ReadPread}
			}
			for _, mode := range modes {
				t.Run(fmt.Sprintf("%s, %s, %s", c.name, strategy, mode), func(t *testing.T) {
					var want map[string][]string
					for rank := range c.n {
						o := bigGuard(t)
						o.Rank, o.WorldSize, o.Strategy, o.Rules, o.Read = rank, c.n, strategy, c.rules, mode
						start, err := mlx.ActiveMemory()
						require.NoError(t, err)
						l, err := Open(c.dir, o)
						require.NoError(t, err)
						if want == nil {
							want = expectedShards(t, c.dir, l.Plan())
						}
						got, err := l.LoadAll(context.Background())
						require.NoError(t, err)
						require.Len(t, got, len(want))
						k := rank
						if strategy == ChunkedEval {
							k = 0 // every rank loads the whole model
						}
						for name, a := range got {
							assert.Equal(t, want[name][k], digest(t, a), "tensor %s rank %d", name, rank)
							a.Free()
						}
						require.NoError(t, l.Close())
						require.NoError(t, mlx.ClearCache())
						end, err := mlx.ActiveMemory()
						require.NoError(t, err)
						assert.Equal(t, start, end, "MLX memory left behind")
					}
				})
			}
		}
	}
}

func TestMLXsLoaderIsARefusedReadModeForDirect(t *testing.T) {
	dir := llamaLike(2, 64, 128, 2, 96).write(t, 1)
	o := bigGuard(t)
	o.Rank, o.WorldSize, o.Rules, o.Read = 0, 2, LlamaRules(8, 4), ReadMLX
	_, err := Open(dir, o)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read mode mlx needs a strategy that reads whole tensors")
	o.Strategy = EvalShardEval
	l, err := Open(dir, o)
	require.NoError(t, err)
	require.NoError(t, l.Close())
}
