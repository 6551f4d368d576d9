package shard_test

import (
	"fmt"
	"log"

	"github.com/mlxdist/mlxdist/loader/shard"
	"github.com/mlxdist/mlxdist/safetensors"
)

// Plan a load from tensor descriptions alone, without any file.
func ExampleNewPlan() {
	desc := func(name string, rows, cols int64) shard.Tensor {
		return shard.Tensor{Name: name, Dtype: safetensors.BF16, Shape: []int64{rows, cols}}
	}
	tensors := []shard.Tensor{
		desc("model.embed_tokens.weight", 1000, 1000),
		desc("model.layers.0.mlp.up_proj.weight", 4000, 1000),
		desc("model.layers.0.mlp.down_proj.weight", 1000, 4000),
	}
	for _, s := range []shard.Strategy{shard.Direct, shard.EvalShardEval} {
		p, err := shard.NewPlan(tensors, shard.PlanOptions{WorldSize: 2, Strategy: s})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: read %d MB, resident %d MB, peak %d MB\n", s, p.Read/1e6, p.Resident/1e6, p.Peak/1e6)
	}
	// Output:
	// direct: read 10 MB, resident 10 MB, peak 10 MB
	// eval-shard-eval: read 18 MB, resident 10 MB, peak 26 MB
}
