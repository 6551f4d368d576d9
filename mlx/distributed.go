package mlx

import (
	"sync/atomic"
)

// Group is a group of processes that communicate through one of MLX's
// distributed back-ends. Package jaccl wraps it with the policy a user
// wants (which back-end, strictness, streams, error hints); this is the raw
// binding.
type Group struct {
	h     uintptr
	freed atomic.Bool
	rank  int
	size  int
}

// DistributedAvailable reports whether MLX was built with the back-end
// ("ring", "jaccl", "mpi", "nccl"; "" or "any" for any of them).
func DistributedAvailable(backend string) (bool, error) {
	var ok bool
	err := doErr(func() error {
		if backend == "" {
			backend = "any"
		}
		ok = mlx_distributed_is_available(backend)
		return nil
	})
	return ok, err
}

// DistributedInit initialises the back-end (the environment variables it
// reads are set by a launcher) and returns the group of all processes. With
// strict false and nothing configured, MLX returns a group of size one.
//
// It changes no process-wide state. The back-ends write to sockets from
// threads Go did not create, and on those threads a write to a peer that has
// gone raises SIGPIPE, whose default action ends the process before MLX can
// report the lost peer as an error: a program that must survive a lost peer
// ignores SIGPIPE first (signal.Ignore(syscall.SIGPIPE), as Python does at
// start-up; jaccl.Init does it unless asked not to).
func DistributedInit(strict bool, backend string) (*Group, error) {
	var g *Group
	err := doErr(func() error {
		if backend == "" {
			backend = "any"
		}
		var h uintptr
		if lib.abi == ABIv06 {
			h = mlx_distributed_init__v06(strict, backend)
			if err := checkHandle("mlx_distributed_init", h); err != nil {
				return err
			}
		} else {
			res := slot(0)
			if err := check("mlx_distributed_init", mlx_distributed_init(res, strict, backend)); err != nil {
				return err
			}
			h = *res
		}
		g = newGroupLocked(h)
		return nil
	})
	return g, err
}

func newGroupLocked(h uintptr) *Group {
	return &Group{h: h, rank: int(mlx_distributed_group_rank(h)), size: int(mlx_distributed_group_size(h))}
}

// Rank is this process's rank in the group.
func (g *Group) Rank() int { return g.rank }

// Size is the number of processes in the group.
func (g *Group) Size() int { return g.size }

// Split divides the group by color; key orders ranks in the new group (-1
// keeps the current order). Only the mpi and nccl back-ends support it.
func (g *Group) Split(color, key int) (*Group, error) {
	var out *Group
	err := doErr(func() error {
		if g.freed.Load() {
			return ErrFreed
		}
		var h uintptr
		if lib.abi == ABIv06 {
			h = mlx_distributed_group_split__v06(g.h, int32(color), int32(key))
			if err := checkHandle("mlx_distributed_group_split", h); err != nil {
				return err
			}
		} else {
			res := slot(0)
			if err := check("mlx_distributed_group_split", mlx_distributed_group_split(res, g.h, int32(color), int32(key))); err != nil {
				return err
			}
			h = *res
		}
		out = newGroupLocked(h)
		return nil
	})
	return out, err
}

// Free releases the group handle (a no-op with mlx-c v0.6, which cannot).
func (g *Group) Free() {
	if g == nil || !g.freed.CompareAndSwap(false, true) {
		return
	}
	if sym.mlx_distributed_group_free == 0 {
		return
	}
	h := g.h
	do(func() { mlx_distributed_group_free(h) })
}

func (g *Group) handleLocked() (uintptr, error) {
	if g == nil {
		return 0, nil // MLX's default (global) group
	}
	if g.freed.Load() {
		return 0, ErrFreed
	}
	return g.h, nil
}

func collective(name string, f func(*uintptr, uintptr, uintptr, uintptr) int32, x *Array, g *Group, s *Stream) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		gh, err := g.handleLocked()
		if err != nil {
			return err
		}
		sh, err := s.handleLocked()
		if err != nil {
			return err
		}
		out, err = opLocked(name, false, []*Array{x}, func(res *uintptr, in []uintptr, _ uintptr) int32 {
			return f(res, in[0], gh, sh)
		})
		return err
	})
	return out, err
}

// AllSum sums x over every process of g (nil: the default group) on stream
// s. The result is lazy like any op.
func AllSum(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_sum", mlx_distributed_all_sum, x, g, s)
}

// AllGather concatenates x from every process along the first axis.
func AllGather(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_gather", mlx_distributed_all_gather, x, g, s)
}

// AllMax is the element-wise maximum of x over every process.
func AllMax(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_max", mlx_distributed_all_max, x, g, s)
}

// AllMin is the element-wise minimum of x over every process.
func AllMin(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_min", mlx_distributed_all_min, x, g, s)
}

// SumScatter sums x over every process and gives each its slice of the
// first axis.
func SumScatter(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_sum_scatter", mlx_distributed_sum_scatter, x, g, s)
}

// Send sends x to rank dst; evaluate the returned array to perform it.
func Send(x *Array, dst int, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_send", func(res *uintptr, x, g, s uintptr) int32 {
		return mlx_distributed_send(res, x, int32(dst), g, s)
	}, x, g, s)
}

// Recv receives an array of the given shape and dtype from rank src.
func Recv(shape []int, dt Dtype, src int, g *Group, s *Stream) (*Array, error) {
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	sh := cInts(shape)
	var out *Array
	err := doErr(func() error {
		gh, err := g.handleLocked()
		if err != nil {
			return err
		}
		st, err := s.handleLocked()
		if err != nil {
			return err
		}
		out, err = opLocked("mlx_distributed_recv", false, nil, func(res *uintptr, _ []uintptr, _ uintptr) int32 {
			return mlx_distributed_recv(res, sh, int32(dt), int32(src), gh, st)
		})
		return err
	})
	return out, err
}
