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
//   - netcfg: a plan → apply → verify → persist cycle for the Thunderbolt RDMA
//     network the jaccl back-end runs on.
//
// The examples directory holds thin programs built on them: the seed's
// connectivity test, the Kimi K2.5 loading test, a checkpoint inspector and
// generator, a launcher, and the Thunderbolt network tool.
package mlxdist
