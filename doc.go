// Package mlxdist is the front page of a Go library that drives Apple's MLX
// without cgo and loads models far larger than one machine's memory across
// several machines, safely.
//
// The packages, from the bottom up:
//
//   - mlx: MLX's C ABI bound through purego (no cgo); arrays, ops, streams,
//     memory figures, MLX errors as Go errors.
//   - safetensors: a validating, mmap-backed index of checkpoint files and
//     directories, with the byte ranges each rank needs of a tensor.
//   - memguard: physical and available memory per OS and the guard that stops
//     a load before the OS does.
//   - jaccl: distributed groups and collectives (AllSum, AllGather, ...) over
//     MLX's jaccl, ring, mpi and nccl back-ends; hostfiles; a launcher.
//   - loader: the ShardLoader, which plans a tensor-parallel load from the
//     headers alone and then yields one layer at a time.
//   - model: DeepSeek-V3 / Kimi K2.x and Llama-family forward passes on the
//     loaded shards, tensor-parallel, bit for bit mlx-lm's; KV cache,
//     sampling and streaming generation.
//   - netcfg: a plan → apply → verify → persist cycle for the Thunderbolt RDMA
//     network the jaccl back-end runs on.
//   - tokenizer: text to ids and back exactly as the model's own tokenizer
//     (Kimi's tiktoken, Hugging Face BPE) and chat templates, in pure Go.
//   - server: the OpenAI API (chat completions, completions, models) over a
//     tensor-parallel group, rank 0 serving and every rank generating in step.
//
// A program that imports the module gets MLX with one command, run once:
// `go run github.com/mlxdist/mlxdist/mlx/setup` installs the pinned pip MLX
// and builds the C ABI library in the user's cache directory, where package
// mlx finds it.
//
// The examples directory holds thin programs built on them: a cluster's
// connectivity test, the Kimi K2.5 loading test, generation, a checkpoint
// inspector and generator, a launcher, the Thunderbolt network tool, a
// tokenizer, and an OpenAI-compatible server.
//
// A tour: every rank of a tensor-parallel job, started by the launcher
// (examples/launch or mlx.launch), joins the group, plans its shard from the
// checkpoint's headers, and loads it one layer at a time.
//
//	g, err := jaccl.Init(ctx, jaccl.Options{Backend: jaccl.JACCL, Strict: true})
//	if err != nil { return err }           // a known RDMA failure says how to fix it
//	defer g.Close()
//	l, err := loader.Open(dir, loader.Options{
//		PlanOptions: loader.PlanOptions{Rank: g.Rank(), WorldSize: g.Size(),
//			Rules: loader.DeepSeekV3Rules(64)},
//	})
//	if err != nil { return err }           // a split that cannot be made, or a peak that will not fit
//	defer l.Close()
//	for layer, err := range l.Layers(ctx) { // each layer read straight into this rank's arrays
//		if err != nil { return err }        // a guard trip, a cancel, a bad file: nothing left allocated
//		keep(layer.Arrays)
//	}
//	sum, err := jaccl.AllSumSlice(ctx, g, []float32{1}) // the collectives run on the right stream
package mlxdist
