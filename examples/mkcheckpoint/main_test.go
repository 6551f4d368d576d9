package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func defaults() flags { return flags{model: "kimi-k2.5", scale: 1, vision: true} }

func TestFlagsBuildTheRequestedSpec(t *testing.T) {
	f := defaults()
	f.scale, f.layers, f.experts = 1.0/16, 3, 4
	s, err := buildSpec(f)
	require.NoError(t, err)
	assert.Equal(t, 3, s.Layers)
	assert.Equal(t, 4, s.Experts)
	assert.Equal(t, 4, s.ActiveExperts, "active experts are capped by experts")
	assert.Equal(t, 1, s.Files, "a small model keeps the full model's size per file")
	assert.Equal(t, 448, s.Hidden)
}

func TestBadFlagsGiveOneLineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*flags)
		want string
	}{
		{"a scale above one is refused", func(f *flags) { f.scale = 2 }, "--scale"},
		{"an unknown model is refused", func(f *flags) { f.model = "gpt" }, "--model"},
		{"experts on llama are refused", func(f *flags) { f.model, f.experts = "llama", 8 }, "--experts"},
		{"more files than tensors are refused", func(f *flags) { f.scale, f.layers, f.files = 0.01, 1, 10000 }, "files"},
		{"a missing output directory is refused", func(f *flags) {}, "--out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := defaults()
			tc.edit(&f)
			err := run(f, &bytes.Buffer{}, &bytes.Buffer{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestDescribeListsTheFullModel(t *testing.T) {
	f := defaults()
	f.describe = true
	var out bytes.Buffer
	require.NoError(t, run(f, &out, &bytes.Buffer{}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	assert.Len(t, lines, 2893+1)
	assert.Contains(t, out.String(), "language_model.model.layers.60.mlp.switch_mlp.down_proj.weight U32 [384,7168,256] 2818572288\n")
	assert.Contains(t, lines[len(lines)-1], "578.54 GB")
}

func TestWriteThenRerunSkips(t *testing.T) {
	f := defaults()
	f.model, f.scale, f.layers, f.files = "llama", 1.0/16, 2, 2
	f.out = filepath.Join(t.TempDir(), "ckpt")
	var out, errOut bytes.Buffer
	require.NoError(t, run(f, &out, &errOut))
	assert.Contains(t, out.String(), "wrote ")
	assert.Contains(t, errOut.String(), "100.0%")
	out.Reset()
	require.NoError(t, run(f, &out, &bytes.Buffer{}))
	assert.Contains(t, out.String(), "already holds this checkpoint")
}

func TestADirectoryOfAnotherCheckpointIsRefusedUnlessForced(t *testing.T) {
	f := defaults()
	f.model, f.scale, f.layers, f.files = "llama", 1.0/16, 2, 2
	f.out = t.TempDir()
	other := filepath.Join(f.out, "model-00001-of-00003.safetensors")
	require.NoError(t, os.WriteFile(other, []byte("another checkpoint's bytes"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(f.out, "mlxdist-shard.json"), []byte(`{"rank":0,"world_size":2}`), 0o644))

	err := run(f, &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--force")
	assert.NotContains(t, err.Error(), "\n")
	assert.FileExists(t, other, "a file it did not write was removed")

	f.force = true
	require.NoError(t, run(f, &bytes.Buffer{}, &bytes.Buffer{}))
	assert.NoFileExists(t, other)
	assert.NoFileExists(t, filepath.Join(f.out, "mlxdist-shard.json"), "the old rank stamp would claim the new checkpoint")
	assert.FileExists(t, filepath.Join(f.out, "mkcheckpoint.json"))
}
