package loader_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// writeExample writes a tiny two-layer checkpoint and returns its directory.
func writeExample() string {
	dir, err := os.MkdirTemp("", "loader-example")
	if err != nil {
		log.Fatal(err)
	}
	t := func(name string, rows, cols int64) safetensors.TensorData {
		return safetensors.TensorData{Name: name, Dtype: safetensors.F32, Shape: []int64{rows, cols}, Data: make([]byte, rows*cols*4)}
	}
	err = safetensors.WriteDir(dir, [][]safetensors.TensorData{{
		t("model.embed_tokens.weight", 32, 8),
		t("model.layers.0.mlp.up_proj.weight", 16, 8), t("model.layers.0.mlp.down_proj.weight", 8, 16),
		t("model.layers.1.mlp.up_proj.weight", 16, 8), t("model.layers.1.mlp.down_proj.weight", 8, 16),
	}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	return dir
}

// Load rank 1 of 2 section by section: each section's arrays are this
// rank's shard, read straight from the files.
func ExampleShardLoader_Layers() {
	dir := writeExample()
	defer os.RemoveAll(dir)
	guard, err := memguard.New(memguard.WithPhysical(1<<40), memguard.WithUsed("active", mlx.ActiveMemory))
	if err != nil {
		log.Fatal(err)
	}
	l, err := loader.Open(dir, loader.Options{Guard: guard,
		PlanOptions: loader.PlanOptions{Rank: 1, WorldSize: 2, Rules: loader.LlamaRules(0, 0)}})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for layer, err := range l.Layers(context.Background()) {
		if err != nil {
			log.Fatal(err) // a *memguard.ExceededError, a *loader.LoadError or ctx.Err()
		}
		if layer.Name == "layers.0" {
			fmt.Printf("layer %d/%d %s: up_proj %v, down_proj %v\n", layer.Index+1, layer.Count, layer.Name,
				layer.Arrays["model.layers.0.mlp.up_proj.weight"].Shape(), layer.Arrays["model.layers.0.mlp.down_proj.weight"].Shape())
		}
		layer.Free() // a real program keeps them in its model
	}
	// Output: layer 2/3 layers.0: up_proj [8 8], down_proj [8 8]
}
