package model

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
)

// A prompt run through the cache in pieces — a prefill, then one token at
// a time (DeepSeek-V3's latent-space decode path), then a chunk again —
// gives the logits the full forward pass gives at those positions, to
// float32 rounding (the pieces round differently, as in mlx-lm).
func TestTheCacheContinuesWhereTheFullForwardWould(t *testing.T) {
	for _, spec := range []string{"llama", "kimi", "qwen3"} {
		t.Run(spec+" through the cache matches its full forward pass", func(t *testing.T) {
			m := loadSpec(t, spec)
			ids := prompts(m.Config.VocabSize)[3][:20]
			full, err := m.Logits(context.Background(), ids)
			require.NoError(t, err)
			vocab := m.Config.VocabSize
			c := m.NewCache()
			defer c.Free()
			for _, piece := range [][2]int{{0, 9}, {9, 10}, {10, 11}, {11, 20}} {
				logits, err := m.Forward(ids[piece[0]:piece[1]], c)
				require.NoError(t, err)
				got, err := mlx.ToSlice[float32](logits)
				logits.Free()
				require.NoError(t, err)
				d, _ := maxDiff(t, got, full[piece[0]*vocab:piece[1]*vocab])
				assert.LessOrEqual(t, d, 1e-5, "positions %d..%d: max |cached − full| = %g", piece[0], piece[1], d)
				assert.Equal(t, piece[1], c.Offset())
			}
			assert.Positive(t, c.Bytes())
		})
	}
}

func TestForwardRefusesIDsOutsideTheVocabulary(t *testing.T) {
	m := loadSpec(t, "llama")
	for _, ids := range [][]int{{}, {-1}, {m.Config.VocabSize}} {
		_, err := m.Forward(ids, nil)
		assert.Error(t, err, "%v", ids)
	}
}
