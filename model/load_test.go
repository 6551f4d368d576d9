package model

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withConfig returns a directory holding the named checkpoint's files with
// config.json edited by edit.
func withConfig(t *testing.T, name string, edit func(c map[string]any)) string {
	t.Helper()
	src := checkpoint(t, name)
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() != "config.json" {
			require.NoError(t, os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())))
		}
	}
	b, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	edit(c)
	b, err = json.Marshal(c)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))
	return dir
}

func TestLoadRefusesAConfigThatDoesNotMatchTheWeights(t *testing.T) {
	requireMLX(t)
	for _, tc := range []struct {
		name string
		spec string
		edit func(c map[string]any)
		want string
	}{
		{"a head count the weights do not have names the tensor and its shape", "llama",
			func(c map[string]any) { c["num_attention_heads"] = 8; c["num_key_value_heads"] = 8 }, "has shape"},
		{"fewer layers than the checkpoint holds leaves tensors no layer takes", "llama",
			func(c map[string]any) { c["num_hidden_layers"] = 1 }, "belong to no layer"},
		{"more layers than the checkpoint holds names the missing tensor", "llama",
			func(c map[string]any) { c["num_hidden_layers"] = 3 }, "no tensor"},
		{"a quantization the weights were not packed with is refused", "kimi-mixed",
			func(c map[string]any) {
				c["quantization"].(map[string]any)["language_model.model.layers.2.self_attn.q_b_proj"] = map[string]any{"group_size": 32, "bits": 4}
			}, "do not hold 4-bit groups of 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Load(context.Background(), withConfig(t, tc.spec, tc.edit), Options{})
			if err == nil {
				m.Free()
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
