package ckptgen

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

// smallKimi is Kimi K2.5 at 1/16 width with 3 layers (1 dense, 2 MoE) of 8
// experts in 2 files: about 13 MB.
func smallKimi() Spec {
	s := KimiK25().Scale(1.0 / 16)
	s.Layers = 3
	s.Experts = 8
	s.Files = 2
	return s
}

func smallLlama() Spec {
	s := Llama().Scale(1.0 / 8)
	s.Layers = 3
	s.Files = 2
	return s
}

func write(t *testing.T, dir string, s Spec, opts *Options) *Result {
	t.Helper()
	res, err := Write(context.Background(), dir, s, opts)
	require.NoError(t, err)
	return res
}

func TestWrittenCheckpointMatchesSpecAndIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"a small Kimi K2.5 reads back as specified", smallKimi()},
		{"a small Llama reads back as specified", smallLlama()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			res := write(t, dir, tc.spec, &Options{Seed: 7})
			assert.False(t, res.Skipped)
			require.Len(t, res.Files, tc.spec.Files)

			ckpt, err := safetensors.OpenDir(dir)
			require.NoError(t, err)
			defer ckpt.Close()
			layout, err := tc.spec.Layout()
			require.NoError(t, err)
			want := tc.spec.Tensors()
			assert.Equal(t, len(want), ckpt.Len())
			var onDisk int64
			for i, file := range layout {
				for _, d := range file {
					info, f, ok := ckpt.Tensor(d.Name)
					require.True(t, ok, d.Name)
					assert.Equal(t, res.Files[i], filepath.Base(f.Path()), d.Name)
					assert.Equal(t, d.Dtype, info.Dtype.String(), d.Name)
					assert.Equal(t, d.Shape, info.Shape, d.Name)
					assert.Equal(t, d.Bytes, info.End-info.Begin, d.Name)
				}
			}
			for _, f := range res.Files {
				fi, err := os.Stat(filepath.Join(dir, f))
				require.NoError(t, err)
				onDisk += fi.Size()
			}
			assert.Equal(t, onDisk, res.FileBytes)

			var idx struct {
				Metadata struct {
					TotalSize int64 `json:"total_size"`
				} `json:"metadata"`
			}
			b, err := os.ReadFile(filepath.Join(dir, safetensors.IndexName))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &idx))
			assert.Equal(t, tc.spec.Sum(want).Bytes, idx.Metadata.TotalSize)
			assert.Equal(t, res.TensorBytes, idx.Metadata.TotalSize)
		})
	}
}

func TestFloatTensorsHoldValuesInTheirRanges(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, smallKimi(), nil)
	ckpt, err := safetensors.OpenDir(dir)
	require.NoError(t, err)
	defer ckpt.Close()
	for _, name := range []string{
		"language_model.model.layers.1.mlp.switch_mlp.up_proj.scales",
		"language_model.model.layers.1.mlp.switch_mlp.up_proj.biases",
		"language_model.model.layers.2.input_layernorm.weight",
		"language_model.model.layers.2.mlp.gate.weight",
		"language_model.model.layers.2.mlp.gate.e_score_correction_bias",
		"vision_tower.encoder.blocks.0.wqkv.weight",
	} {
		t.Run(name, func(t *testing.T) {
			info, f, ok := ckpt.Tensor(name)
			require.True(t, ok)
			data, err := f.Data(name)
			require.NoError(t, err)
			lo, hi := valueRange(name)
			var vals []float64
			switch info.Dtype.String() {
			case "BF16":
				for i := 0; i < len(data); i += 2 {
					vals = append(vals, float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(data[i:]))<<16)))
				}
			case "F32":
				for i := 0; i < len(data); i += 4 {
					vals = append(vals, float64(math.Float32frombits(binary.LittleEndian.Uint32(data[i:]))))
				}
			}
			require.NotEmpty(t, vals)
			var mean float64
			for _, v := range vals {
				require.True(t, v >= lo-0.01*math.Abs(lo) && v <= hi+0.01*math.Abs(hi), "%g outside [%g, %g]", v, lo, hi)
				mean += v / float64(len(vals))
			}
			if len(vals) >= 1000 {
				assert.InDelta(t, (lo+hi)/2, mean, (hi-lo)/10, "values spread over the range")
			}
		})
	}
}

func digests(t *testing.T, dir string, files []string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		out[f] = sha256.Sum256(b)
	}
	return out
}

func TestSameSeedGivesSameBytes(t *testing.T) {
	s := smallKimi()
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	ra := write(t, a, s, &Options{Seed: 42, Parallel: 1})
	write(t, b, s, &Options{Seed: 42, Parallel: 2})
	write(t, c, s, &Options{Seed: 43})
	files := append(ra.Files, safetensors.IndexName, "config.json", "tokenizer.json", StampName)
	assert.Equal(t, digests(t, a, files), digests(t, b, files), "parallelism does not change the bytes")
	da, dc := digests(t, a, ra.Files), digests(t, c, ra.Files)
	for _, f := range ra.Files {
		assert.NotEqual(t, da[f], dc[f], "another seed gives other data in %s", f)
	}
}

func TestTensorDataDoesNotDependOnFileSplit(t *testing.T) {
	s1 := smallLlama()
	s1.Files = 1
	s3 := smallLlama()
	s3.Files = 3
	a, b := t.TempDir(), t.TempDir()
	write(t, a, s1, &Options{Seed: 5})
	write(t, b, s3, &Options{Seed: 5})
	ca, err := safetensors.OpenDir(a)
	require.NoError(t, err)
	defer ca.Close()
	cb, err := safetensors.OpenDir(b)
	require.NoError(t, err)
	defer cb.Close()
	for _, name := range ca.Names() {
		_, fa, _ := ca.Tensor(name)
		_, fb, ok := cb.Tensor(name)
		require.True(t, ok, name)
		da, err := fa.Data(name)
		require.NoError(t, err)
		db, err := fb.Data(name)
		require.NoError(t, err)
		require.Equal(t, da, db, name)
	}
}

func TestRewritingTheSameSpecIsSkipped(t *testing.T) {
	dir := t.TempDir()
	s := smallLlama()
	first := write(t, dir, s, &Options{Seed: 1})
	require.False(t, first.Skipped)
	shard := filepath.Join(dir, first.Files[0])
	before, err := os.Stat(shard)
	require.NoError(t, err)

	var calls int
	again := write(t, dir, s, &Options{Seed: 1, Progress: func(int64, int64) { calls++ }})
	assert.True(t, again.Skipped)
	assert.Zero(t, calls, "nothing is written")
	assert.Equal(t, first.FileBytes, again.FileBytes)
	after, err := os.Stat(shard)
	require.NoError(t, err)
	assert.Equal(t, before.ModTime(), after.ModTime())

	t.Run("another seed rewrites", func(t *testing.T) {
		r := write(t, dir, s, &Options{Seed: 2})
		assert.False(t, r.Skipped)
	})
	t.Run("force rewrites", func(t *testing.T) {
		r := write(t, dir, s, &Options{Seed: 2, Force: true})
		assert.False(t, r.Skipped)
	})
	t.Run("a truncated shard file is rewritten", func(t *testing.T) {
		require.NoError(t, os.Truncate(shard, 100))
		r := write(t, dir, s, &Options{Seed: 2})
		assert.False(t, r.Skipped)
		fi, err := os.Stat(shard)
		require.NoError(t, err)
		assert.Greater(t, fi.Size(), int64(100))
	})
	t.Run("another file count rewrites and removes the old shard files", func(t *testing.T) {
		s3 := s
		s3.Files = 3
		r := write(t, dir, s3, &Options{Seed: 2})
		assert.False(t, r.Skipped)
		matches, err := filepath.Glob(filepath.Join(dir, "model*.safetensors"))
		require.NoError(t, err)
		assert.Len(t, matches, 3)
		ckpt, err := safetensors.OpenDir(dir)
		require.NoError(t, err)
		ckpt.Close()
	})
}

func TestProgressCountsEveryByteInOrder(t *testing.T) {
	var last, total int64
	var calls int
	res := write(t, t.TempDir(), smallKimi(), &Options{Progress: func(w, tot int64) {
		assert.GreaterOrEqual(t, w, last)
		last, total = w, tot
		calls++
	}})
	assert.Equal(t, res.TensorBytes, last)
	assert.Equal(t, res.TensorBytes, total)
	assert.Greater(t, calls, 1)
}

func TestCancelledWriteLeavesNoStamp(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Write(ctx, dir, smallKimi(), &Options{Progress: func(w, _ int64) {
		if w > 1<<20 {
			cancel()
		}
	}})
	assert.ErrorIs(t, err, context.Canceled)
	assert.NoFileExists(t, filepath.Join(dir, StampName))
	assert.NoFileExists(t, filepath.Join(dir, safetensors.IndexName))
}

func TestWriteRejectsAnInvalidSpec(t *testing.T) {
	s := smallKimi()
	s.Heads = 0
	_, err := Write(context.Background(), t.TempDir(), s, nil)
	var se *SpecError
	assert.ErrorAs(t, err, &se)
}

func TestFloat16EncodesNormalValues(t *testing.T) {
	for _, tc := range []struct {
		v    float32
		want uint16
	}{{1, 0x3c00}, {-2, 0xc000}, {0.5, 0x3800}, {0.0999755859375, 0x2e66}} {
		assert.Equal(t, tc.want, float16(tc.v), "%g", tc.v)
	}
}
