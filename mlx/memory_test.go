package mlx_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/mlx"
)

// limitsScript sets each limit to two values and back from a fresh Python
// MLX and prints what every setter returned, and the memory limit read
// back after the first set.
const limitsScript = `
import json, sys
import mlx.core as mx
a, b = int(sys.argv[1]), int(sys.argv[2])
out = {"default_memory_limit": mx.get_memory_limit()}
for name, setter in [("memory", mx.set_memory_limit), ("wired", mx.set_wired_limit), ("cache", mx.set_cache_limit)]:
    first = setter(a)
    read = mx.get_memory_limit() if name == "memory" else None
    second = setter(b)
    third = setter(first)
    out[name] = {"returns": [first, second, third], "read_back": read}
print(json.dumps(out))
`

func TestMemoryWiredAndCacheLimitsSetReadBackAndRestoreAsPythonMLXDoes(t *testing.T) {
	requireMLX(t)
	const a, b = 3 << 30, 5 << 30
	var want map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(testenv.RunPython(t, limitsScript, "3221225472", "5368709120"), &want))
	type result struct {
		Returns  []int64 `json:"returns"`
		ReadBack *int64  `json:"read_back"`
	}
	var defaultLimit int64
	require.NoError(t, json.Unmarshal(want["default_memory_limit"], &defaultLimit))
	before := ok(mlx.MemoryLimit())(t)
	assert.Equal(t, defaultLimit, before, "the memory limit this process starts with is Python MLX's default")

	for _, c := range []struct {
		name string
		set  func(int64) (int64, error)
	}{
		{"memory", mlx.SetMemoryLimit},
		{"wired", mlx.SetWiredLimit},
		{"cache", mlx.SetCacheLimit},
	} {
		t.Run("the "+c.name+" limit's setter returns what Python's returns and restores", func(t *testing.T) {
			var py result
			require.NoError(t, json.Unmarshal(want[c.name], &py))
			var got result
			first := ok(c.set(a))(t)
			if c.name == "memory" {
				read := ok(mlx.MemoryLimit())(t)
				got.ReadBack = &read
				assert.Equal(t, int64(a), read, "the memory limit reads back as set")
			}
			second := ok(c.set(b))(t)
			third := ok(c.set(first))(t)
			got.Returns = []int64{first, second, third}
			assert.Equal(t, py, got)
		})
	}
	assert.Equal(t, before, ok(mlx.MemoryLimit())(t), "the memory limit is restored")
}

func TestPeakMemoryRisesWithAnArrayAndResetBringsItBackToActive(t *testing.T) {
	requireMLX(t)
	require.NoError(t, mlx.ClearCache())
	require.NoError(t, mlx.ResetPeakMemory())
	start := ok(mlx.Memory())(t)
	assert.Equal(t, start.Active, start.Peak, "a reset peak is the active memory")

	const n = 1 << 20
	a := ok(mlx.FromSlice(make([]float32, n)))(t)
	require.NoError(t, mlx.Eval(a))
	held := ok(mlx.PeakMemory())(t)
	assert.GreaterOrEqual(t, held, start.Active+4*n, "the peak counts the 4 MiB array")
	a.Free()
	require.NoError(t, mlx.ClearCache())

	after := ok(mlx.Memory())(t)
	assert.Equal(t, start.Active, after.Active, "freeing gives the array back")
	assert.Equal(t, held, after.Peak, "the peak remembers the array after it is gone")
	require.NoError(t, mlx.ResetPeakMemory())
	assert.Equal(t, after.Active, ok(mlx.PeakMemory())(t))
}

func TestAsyncEvalComputesWithoutAnotherEval(t *testing.T) {
	requireMLX(t)
	require.NoError(t, mlx.ClearCache())
	const n = 1 << 20
	x := randFloats(7, n)
	xa := arr(t, x)
	require.NoError(t, mlx.Eval(xa))
	sum := ok(mlx.Add(xa, xa))(t)
	t.Cleanup(sum.Free)
	lazy := ok(mlx.ActiveMemory())(t)

	require.NoError(t, mlx.AsyncEval(sum))
	require.NoError(t, mlx.Synchronize(nil)) // the default stream, which Add ran on
	// Nothing but the asynchronous evaluation allocated the result's
	// buffer: a lazy array holds no memory.
	assert.GreaterOrEqual(t, ok(mlx.ActiveMemory())(t), lazy+4*n, "the result is in memory after AsyncEval and Synchronize")

	want := make([]float32, n)
	for i, v := range x {
		want[i] = v + v
	}
	assert.Equal(t, want, ok(mlx.ToSlice[float32](sum))(t))
}
