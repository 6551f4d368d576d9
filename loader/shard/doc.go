// Package shard decides, from tensor headers alone and without MLX, how a
// checkpoint is cut among ranks: the sharding rules (RuleSet, Resolve into a
// Split), the sections a load goes through, the Plan of what a rank reads,
// keeps and peaks at, pipeline Placement, and Reshard, which writes a rank's
// shard of a checkpoint to its own directory by copying bytes.
//
// The bytes of a rank's part of a tensor are computed in one place,
// safetensors.TensorInfo.Part, from the Split's slices (Split.Slices); a
// TensorPlan stores that Part and its file, and Plan.Ranges yields its
// runs. Package loader runs a Plan with MLX and gives every name of this
// package as an alias.
//
// Nothing here imports MLX or purego; a test of the module's import graph
// keeps it so.
package shard
