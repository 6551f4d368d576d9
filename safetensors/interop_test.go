package safetensors

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pyTensor is what the Python side reports for one tensor.
type pyTensor struct {
	Dtype  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	SHA256 string  `json:"sha256"`
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pyWrite is run by Python: random tensors of every dtype safetensors.numpy
// knows (it has no bfloat16, so bf16 bits travel as U16), written as one
// file and as a sharded directory with an index.
const pyWrite = `
import sys, json, hashlib, os
import numpy as np
from safetensors.numpy import save_file
out = sys.argv[1]
rng = np.random.default_rng(7)
t = {
  "f32": rng.standard_normal((3, 5)).astype(np.float32),
  "f64": rng.standard_normal((4,)).astype(np.float64),
  "f16": rng.standard_normal((2, 3, 4)).astype(np.float16),
  "bf16_bits": rng.integers(0, 2**16, (8, 2), dtype=np.uint16),
  "i8": rng.integers(-128, 127, (7,), dtype=np.int8),
  "u8": rng.integers(0, 255, (3, 3), dtype=np.uint8),
  "i16": rng.integers(-999, 999, (5,), dtype=np.int16),
  "i32": rng.integers(-999, 999, (2, 2), dtype=np.int32),
  "u32": rng.integers(0, 999, (3,), dtype=np.uint32),
  "i64": rng.integers(-999, 999, (2,), dtype=np.int64),
  "u64": rng.integers(0, 999, (1, 1), dtype=np.uint64),
  "bool": rng.integers(0, 2, (6,)).astype(bool),
  "c64": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
  "scalar": np.array(3.5, dtype=np.float32),
  "empty": np.zeros((0, 4), dtype=np.float32),
}
save_file(t, os.path.join(out, "one.safetensors"), metadata={"format": "np"})
d = os.path.join(out, "sharded"); os.makedirs(d)
names = sorted(t)
shards = [names[:5], names[5:9], names[9:]]
wm = {}
for i, s in enumerate(shards):
    fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
    save_file({k: t[k] for k in s}, os.path.join(d, fn))
    wm.update({k: fn for k in s})
json.dump({"metadata": {"total_size": sum(v.nbytes for v in t.values())}, "weight_map": wm},
          open(os.path.join(d, "model.safetensors.index.json"), "w"))
from safetensors.numpy import _TYPES
rev = {np.dtype(v): k for k, v in _TYPES.items()}
print(json.dumps({k: {"dtype": rev[v.dtype], "shape": list(v.shape),
    "sha256": hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()} for k, v in t.items()}))
`

func TestFilesWrittenByPythonAreReadByteIdentically(t *testing.T) {
	dir := t.TempDir()
	var want map[string]pyTensor
	require.NoError(t, json.Unmarshal(testenv.RunPython(t, pyWrite, dir), &want))
	require.Len(t, want, 15)

	check := func(t *testing.T, lookup func(string) (TensorInfo, []byte, bool), names []string) {
		t.Helper()
		assert.Len(t, names, len(want))
		for name, w := range want {
			info, data, ok := lookup(name)
			require.True(t, ok, name)
			assert.Equal(t, w.Dtype, info.Dtype.String(), name)
			assert.Equal(t, w.Shape, append([]int64{}, info.Shape...), name)
			assert.Equal(t, w.SHA256, sha(data), name)
		}
	}
	t.Run("one file", func(t *testing.T) {
		f, err := Open(filepath.Join(dir, "one.safetensors"))
		require.NoError(t, err)
		defer f.Close()
		assert.Equal(t, map[string]string{"format": "np"}, f.Metadata())
		check(t, func(name string) (TensorInfo, []byte, bool) {
			info, ok := f.Tensor(name)
			data, err := f.Data(name)
			return info, data, ok && err == nil
		}, f.Names())
	})
	t.Run("sharded directory", func(t *testing.T) {
		d, err := OpenDir(filepath.Join(dir, "sharded"))
		require.NoError(t, err)
		defer d.Close()
		assert.Len(t, d.Files(), 3)
		total, ok := d.IndexTotalSize()
		assert.True(t, ok)
		assert.Equal(t, total, d.TotalBytes())
		check(t, func(name string) (TensorInfo, []byte, bool) {
			info, f, ok := d.Tensor(name)
			if !ok {
				return info, nil, false
			}
			data, err := f.Data(name)
			return info, data, err == nil
		}, d.Names())
	})
}

// randomTensors makes tensors of several dtypes, shapes and sizes.
func randomTensors(rng *rand.Rand) []TensorData {
	specs := []TensorSpec{
		{"model.layers.0.self_attn.q_proj.weight", BF16, []int64{16, 12}},
		{"model.layers.0.mlp.gate_up", F32, []int64{6, 4, 10}},
		{"model.embed_tokens.weight", F16, []int64{10, 8}},
		{"scales", U8, []int64{3, 5, 7}},
		{"counts", I64, []int64{4}},
		{"flags", Bool, []int64{9}},
		{"ids", I32, []int64{2, 3, 2, 4}},
		{"cplx", C64, []int64{2, 2}},
		{"fp8", F8E4M3, []int64{4, 6}},
		{"fp4", F4, []int64{4, 6}},
		{"scalar", F64, []int64{}},
		{"empty", F32, []int64{0, 3}},
		{"name with \"quotes\" & <html>", U16, []int64{2}},
	}
	out := make([]TensorData, len(specs))
	for i, s := range specs {
		n, _, _ := byteSize(s.Dtype, s.Shape)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if s.Dtype == Bool {
			for j := range b {
				b[j] &= 1
			}
		}
		out[i] = TensorData{s.Name, s.Dtype, s.Shape, b}
	}
	return out
}

const pyRead = `
import sys, json, hashlib
from safetensors import safe_open
out = {}
with safe_open(sys.argv[1], "numpy") as f:
    meta = f.metadata()
    for k in f.keys():
        sl = f.get_slice(k)
        out[k] = {"dtype": sl.get_dtype(), "shape": sl.get_shape()}
# The numpy backend has no bf16, fp8 or fp4: hash the raw bytes with the
# header's offsets instead, read by Python's own json and struct.
import struct
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
for k, v in hdr.items():
    if k == "__metadata__":
        continue
    b, e = v["data_offsets"]
    out[k]["sha256"] = hashlib.sha256(raw[8 + n + b:8 + n + e]).hexdigest()
print(json.dumps({"meta": meta, "tensors": out}))
`

func TestFilesWrittenByThisPackageAreReadByPython(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tensors := randomTensors(rng)
	path := filepath.Join(t.TempDir(), "go.safetensors")
	meta := map[string]string{"format": "mlx", "note": "é \"q\""}
	require.NoError(t, WriteFile(path, tensors, meta))

	var got struct {
		Meta    map[string]string   `json:"meta"`
		Tensors map[string]pyTensor `json:"tensors"`
	}
	require.NoError(t, json.Unmarshal(testenv.RunPython(t, pyRead, path), &got))
	assert.Equal(t, meta, got.Meta)
	require.Len(t, got.Tensors, len(tensors))
	for _, tt := range tensors {
		g := got.Tensors[tt.Name]
		assert.Equal(t, tt.Dtype.String(), g.Dtype, tt.Name)
		assert.Equal(t, tt.Shape, append([]int64{}, g.Shape...), tt.Name)
		assert.Equal(t, sha(tt.Data), g.SHA256, tt.Name)
	}

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Zero(t, f.DataOffset()%8, "the data starts 8-byte aligned")
	assert.Equal(t, int64(len(raw)), f.DataOffset()+f.TotalBytes())
}

const pyNumpyWrite = `
import sys, json, hashlib
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
rng = np.random.default_rng(int(sys.argv[2]))
dts = [np.float32, np.float16, np.int8, np.uint16, np.float64]
tensors, cases = {}, []
for i in range(40):
    rank = int(rng.integers(1, 5))
    shape = [int(x) for x in rng.integers(1, 5, rank)]
    axis = int(rng.integers(0, rank))
    n = int(rng.choice([1, 2, 3, 4]))
    shape[axis] *= n
    name = "t%02d" % i
    a = rng.standard_normal(shape).astype(dts[i % len(dts)]) if dts[i % len(dts)] != np.int8 else rng.integers(-100, 100, shape, dtype=np.int8)
    if dts[i % len(dts)] == np.uint16:
        a = rng.integers(0, 2**16, shape, dtype=np.uint16)
    tensors[name] = a
    parts = [hashlib.sha256(p.tobytes()).hexdigest() for p in np.split(a, n, axis)]
    cases.append({"name": name, "axis": axis, "n": n, "parts": parts,
                  "part_shape": list(np.split(a, n, axis)[0].shape)})
save_file(tensors, sys.argv[1])
print(json.dumps(cases))
`

func TestPartRangesMatchNumpySplit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "split.safetensors")
	var cases []struct {
		Name      string   `json:"name"`
		Axis      int      `json:"axis"`
		N         int      `json:"n"`
		Parts     []string `json:"parts"`
		PartShape []int64  `json:"part_shape"`
	}
	require.NoError(t, json.Unmarshal(testenv.RunPython(t, pyNumpyWrite, path, "11"), &cases))
	require.Len(t, cases, 40)
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	pf, err := os.Open(path)
	require.NoError(t, err)
	defer pf.Close()
	st, err := pf.Stat()
	require.NoError(t, err)
	rf, err := NewReader(pf, st.Size())
	require.NoError(t, err)

	for _, c := range cases {
		info, ok := f.Tensor(c.Name)
		require.True(t, ok)
		shape, err := info.PartShape(c.Axis, c.N)
		require.NoError(t, err)
		assert.Equal(t, c.PartShape, shape, c.Name)
		size, err := info.PartSize(c.Axis, c.N)
		require.NoError(t, err)
		for k, want := range c.Parts {
			label := fmt.Sprintf("%s %v axis %d part %d of %d", c.Name, info.Shape, c.Axis, k, c.N)
			rs, err := info.PartRanges(c.Axis, c.N, k)
			require.NoError(t, err)
			var viaRanges []byte
			for i, r := range rs {
				viaRanges = append(viaRanges, readRange(t, path, r)...)
				if i > 0 {
					assert.Greater(t, r.Offset, rs[i-1].End(), "adjacent ranges are merged: %s", label)
				}
			}
			assert.Equal(t, want, sha(viaRanges), label)

			for _, read := range []struct {
				how string
				fn  func(string, int, int, int, []byte) (int, error)
			}{{"ReadPart", f.ReadPart}, {"ReadPart unmapped", rf.ReadPart},
				{"ReadPartAt pread", modeReader(f, ReadPread)}, {"ReadPartAt auto", modeReader(f, ReadAuto)}} {
				dst := make([]byte, size)
				n, err := read.fn(c.Name, c.Axis, c.N, k, dst)
				require.NoError(t, err, label)
				assert.Equal(t, int(size), n)
				assert.Equal(t, want, sha(dst), "%s: %s", read.how, label)
			}
		}
	}
}

func readRange(t *testing.T, path string, r Range) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return raw[r.Offset:r.End()]
}

const pyMLXWrite = `
import sys, json, hashlib
import numpy as np
import mlx.core as mx
rng = np.random.default_rng(3)
t = {"w.bf16": mx.array(rng.standard_normal((6, 4)).astype(np.float32)).astype(mx.bfloat16),
     "b.f32": mx.array(rng.standard_normal((5,)).astype(np.float32)),
     "a.u32": mx.array(rng.integers(0, 2**31, (3, 2), dtype=np.uint32))}
mx.save_safetensors(sys.argv[1], t, metadata={"format": "mlx"})
out = {}
for k, v in t.items():
    raw = np.array(v.view(mx.uint16) if v.dtype == mx.bfloat16 else v).tobytes()
    out[k] = hashlib.sha256(raw).hexdigest()
print(json.dumps(out))
`

func TestFilesWrittenByMLXAreReadByteIdentically(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mlx.safetensors")
	var want map[string]string
	require.NoError(t, json.Unmarshal(testenv.RunPython(t, pyMLXWrite, path), &want))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, "mlx", f.Metadata()["format"])
	info, ok := f.Tensor("w.bf16")
	require.True(t, ok)
	assert.Equal(t, BF16, info.Dtype)
	for name, w := range want {
		data, err := f.Data(name)
		require.NoError(t, err)
		assert.Equal(t, w, sha(data), name)
	}
	assert.True(t, strings.HasPrefix(f.Names()[0], "a."))
}
