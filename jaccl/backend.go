package jaccl

import "github.com/mlxdist/mlxdist/jaccl/cluster"

// The back-end names and the error type of a failed back-end are the
// cluster description's (package cluster, which programs that only launch
// or describe a cluster use without loading MLX); they are repeated here so
// that joining a group needs this package alone.

// Backend names one of MLX's distributed back-ends.
type Backend = cluster.Backend

// The back-ends, as mlx.launch and mx.distributed.init spell them.
const (
	Any       = cluster.Any
	Ring      = cluster.Ring
	MPI       = cluster.MPI
	NCCL      = cluster.NCCL
	JACCL     = cluster.JACCL
	JACCLRing = cluster.JACCLRing
)

// BackendError is a back-end failure with its kind and the fix that
// applies (see cluster.Explain).
type BackendError = cluster.BackendError

// The failures a group's members see most, repeated from package cluster
// for errors.Is: a peer that went away, and a group that never formed.
var (
	ErrPeerLost    = cluster.ErrPeerLost
	ErrInitTimeout = cluster.ErrInitTimeout
)
