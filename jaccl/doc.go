// Package jaccl is how a rank of a distributed MLX job joins its group and
// talks to the others: Init, the collectives, and errors that say how to fix
// a broken RDMA setup.
//
// The cluster description that needs no MLX — back-end names, the hostfile,
// the environment every rank's back-end reads, the launcher and the table of
// known failures — is package cluster below this one, so that a program that
// only launches or describes a cluster (examples/launch, examples/tbnet)
// does not load MLX. The names a group's members use most (Backend and its
// constants, BackendError, ErrPeerLost, ErrInitTimeout) are repeated here.
//
// # Groups
//
// A rank joins with Init, which wraps MLX's distributed init with the rules
// a user of a Thunderbolt RDMA cluster wants: asking for a back-end and getting
// another is an error (jaccl never quietly becomes ring), and a group of one
// when the launcher set up N ranks is an error too. The collectives (AllSum,
// AllGather, AllMax, AllMin, SumScatter, Send, Recv) are lazy MLX ops on the
// stream the back-end needs: the CPU stream for ring, jaccl and mpi, the GPU
// stream for nccl. Group.Eval, Barrier and the eager AllSumSlice and
// AllGatherSlice evaluate under a watchdog (Options.Timeout): MLX cannot be
// interrupted inside a collective, so a peer that stops answering ends this
// rank with an error that names it, and the launcher stops the job;
// Group.Watch puts the same watchdog over work built and read in several
// calls. A peer that dies is usually noticed by the back-end itself within
// milliseconds, and the group then refuses every later call with
// cluster.ErrPeerLost: MLX's ring back-end never completes a collective
// started after it noticed a lost peer. Init is
// bounded the same way (Options.InitTimeout, MLXDIST_INIT_TIMEOUT, 30 s by
// default): a rank that never arrives — stopped, or stuck before init —
// ends the ranks waiting for it with an error naming the peers they waited
// for.
//
// # Back-ends
//
// jaccl (RDMA over Thunderbolt 5, macOS) is the back-end this module is for;
// jaccl-ring is jaccl with MLX_JACCL_RING=1; ring (TCP) runs anywhere and is
// what the tests use; nccl (CUDA) pins each rank of a host to its own GPU with
// CUDA_VISIBLE_DEVICES, as mlx.launch does, and was checked on two H200s; mpi is left to
// mpirun. Nothing here falls back from jaccl to ring on its own.
package jaccl
