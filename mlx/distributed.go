package mlx

import (
	"fmt"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/ebitengine/purego"
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
		var p uintptr
		var b []byte
		if backend != "" {
			b = cString(backend)
			p = uintptr(unsafe.Pointer(&b[0]))
		}
		r, _, _ := purego.SyscallN(lib.sym.distIsAvailable, p)
		runtime.KeepAlive(b)
		ok = byte(r) != 0
		return nil
	})
	return ok, err
}

// DistributedInit initialises the back-end (the environment variables it
// reads are set by a launcher) and returns the group of all processes. With
// strict false and nothing configured, MLX returns a group of size one.
//
// It makes the process ignore SIGPIPE, as Python does: the back-ends write
// to sockets from threads Go did not create, and a peer that has gone would
// otherwise turn the next write into a signal that kills this process before
// MLX can report the lost peer as an error. (Writes to a closed stdout then
// fail with EPIPE instead of ending the program.)
func DistributedInit(strict bool, backend string) (*Group, error) {
	signal.Ignore(syscall.SIGPIPE)
	var g *Group
	err := doErr(func() error {
		var b []byte
		var p uintptr
		if backend != "" {
			b = cString(backend)
			p = uintptr(unsafe.Pointer(&b[0]))
		}
		var h uintptr
		if lib.abi == ABIv06 {
			h, _, _ = purego.SyscallN(lib.sym.distInit, boolArg(strict), p)
			if err := checkHandle("mlx_distributed_init", h); err != nil {
				return err
			}
		} else {
			rc, _, _ := purego.SyscallN(lib.sym.distInit, slotAddr(0), boolArg(strict), p)
			if err := check("mlx_distributed_init", rc); err != nil {
				return err
			}
			h = slots[0]
		}
		runtime.KeepAlive(b)
		g = newGroupLocked(h)
		return nil
	})
	return g, err
}

func newGroupLocked(h uintptr) *Group {
	r, _, _ := purego.SyscallN(lib.sym.distGroupRank, h)
	s, _, _ := purego.SyscallN(lib.sym.distGroupSize, h)
	return &Group{h: h, rank: int(int32(r)), size: int(int32(s))}
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
			h, _, _ = purego.SyscallN(lib.sym.distGroupSplit, g.h, uintptr(int32(color)), uintptr(int32(key)))
			if err := checkHandle("mlx_distributed_group_split", h); err != nil {
				return err
			}
		} else {
			rc, _, _ := purego.SyscallN(lib.sym.distGroupSplit, slotAddr(0), g.h, uintptr(int32(color)), uintptr(int32(key)))
			if err := check("mlx_distributed_group_split", rc); err != nil {
				return err
			}
			h = slots[0]
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
	if lib.sym.distGroupFree == 0 {
		return
	}
	h := g.h
	do(func() { purego.SyscallN(lib.sym.distGroupFree, h) })
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

func collective(name string, fn func() uintptr, x *Array, g *Group, s *Stream, extra ...uintptr) (*Array, error) {
	var out *Array
	err := doErr(func() error {
		xh, err := x.handle()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		gh, err := g.handleLocked()
		if err != nil {
			return err
		}
		sh, err := streamLocked(s.dev)
		if err != nil {
			return err
		}
		args := append([]uintptr{slotAddr(0), xh}, extra...)
		args = append(args, gh, sh)
		rc, _, _ := purego.SyscallN(fn(), args...)
		if err := check(name, rc); err != nil {
			return err
		}
		out = newArray(slots[0])
		return nil
	})
	return out, err
}

// AllSum sums x over every process of g (nil: the default group) on stream
// s. The result is lazy like any op.
func AllSum(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_sum", func() uintptr { return lib.sym.distAllSum }, x, g, s)
}

// AllGather concatenates x from every process along the first axis.
func AllGather(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_gather", func() uintptr { return lib.sym.distAllGather }, x, g, s)
}

// AllMax is the element-wise maximum of x over every process.
func AllMax(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_max", func() uintptr { return lib.sym.distAllMax }, x, g, s)
}

// AllMin is the element-wise minimum of x over every process.
func AllMin(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_all_min", func() uintptr { return lib.sym.distAllMin }, x, g, s)
}

// SumScatter sums x over every process and gives each its slice of the
// first axis.
func SumScatter(x *Array, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_sum_scatter", func() uintptr { return lib.sym.distSumScatter }, x, g, s)
}

// Send sends x to rank dst; evaluate the returned array to perform it.
func Send(x *Array, dst int, g *Group, s *Stream) (*Array, error) {
	return collective("mlx_distributed_send", func() uintptr { return lib.sym.distSend }, x, g, s, uintptr(int32(dst)))
}

// Recv receives an array of the given shape and dtype from rank src.
func Recv(shape []int, dt Dtype, src int, g *Group, s *Stream) (*Array, error) {
	if _, err := checkShape(shape); err != nil {
		return nil, err
	}
	sh := cShape(shape)
	var out *Array
	err := doErr(func() error {
		gh, err := g.handleLocked()
		if err != nil {
			return err
		}
		st, err := streamLocked(s.dev)
		if err != nil {
			return err
		}
		rc, _, _ := purego.SyscallN(lib.sym.distRecv, slotAddr(0), int32Ptr(sh), uintptr(len(sh)),
			uintptr(dt), uintptr(int32(src)), gh, st)
		if err := check("mlx_distributed_recv", rc); err != nil {
			return err
		}
		out = newArray(slots[0])
		return nil
	})
	runtime.KeepAlive(sh)
	return out, err
}
