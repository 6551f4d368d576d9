package shard

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/safetensors"
)

func TestDiskCountsThePagesARanksRunsTouch(t *testing.T) {
	const page = 4096
	for _, tc := range []struct {
		name string
		t    Tensor
		k    int
		want int64
	}{
		{"a replicated tensor reads its pages", info("model.norm.weight", safetensors.U8, 10000), 0, 3 * page},
		{"a leading-axis half is one run of its own pages", info("layers.0.mlp.up_proj.weight", safetensors.U8, 8, 1024), 1, page},
		{"half of every 1 KB row touches every page", info("layers.0.mlp.down_proj.weight", safetensors.U8, 64, 1024), 0, 16 * page},
		{"runs a page or more apart touch only their own pages", info("layers.0.mlp.down_proj.weight", safetensors.U8, 4, 16384), 1, 8 * page},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan([]Tensor{tc.t}, PlanOptions{WorldSize: 2, Rank: tc.k, Rules: LlamaRules(0, 0), PageSize: page})
			require.NoError(t, err)
			assert.Equal(t, tc.want, p.Disk)
		})
	}
}
