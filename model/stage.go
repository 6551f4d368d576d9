package model

import (
	"fmt"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/mlx"
)

// A stage of several ranks (TP × PP) sums every sharded-to-all layer over
// its own ranks, not over the whole group. MLX's mpi back-end can split the
// group, and the stage all-sums over its split. Its ring and jaccl
// back-ends cannot split a group, and their send and recv reach only a
// rank's two ring neighbours (rank ± 1): there the stage sums by a chain of
// neighbour exchanges, which works because a placement puts a stage on
// consecutive ranks (stage s is ranks s·TP … s·TP+TP−1).
//
// The chain reduces from the stage's first rank to its last, which sends
// the total back down the chain: with TP=2, the lower rank sends its part
// and receives the sum, the higher receives, adds and sends the sum back.
// Every rank of the stage ends with the last rank's bits; for TP=2 they are
// what the ring all-sum gives (a+b is b+a in floating point), for TP>2 the
// order of the additions differs from the ring's and so may the last bits.
//
// MLX's ring send blocks until the peer has taken the bytes the socket
// buffers cannot hold, and a recv, which has no inputs, can be scheduled
// anywhere in a lazy graph. Two ranks that both sent a prefill's hidden
// states first would wait for ever; a rank whose two recvs from one peer
// ran swapped would read the wrong tensor. So the chain evaluates as it
// goes, in rank order: a rank first evaluates its own part (the stage's
// ranks compute theirs at once), then each receive, then each send, so
// that at any moment the rank a send waits for is in, or on its way to, the
// matching receive.

// chain is a rank's place in the neighbour exchanges that sum over its
// stage.
type chain struct {
	world  *mlx.Group
	stream *mlx.Stream
	rank   int // in the whole group
	pos, k int // the rank's position in its stage, and the stage's ranks
}

// sum returns x summed over the stage, the same bits on every rank of it.
func (c *chain) sum(s *scope, x *mlx.Array) *mlx.Array {
	if s.err != nil {
		return nil
	}
	shape, dt := x.Shape(), x.Dtype()
	acc := x
	if c.pos > 0 {
		s.eval(x)
		acc = s.add(s.recvNow(shape, dt, c.rank-1, c.world, c.stream), x)
	}
	if c.pos == c.k-1 {
		s.eval(s.send(acc, c.rank-1, c.world, c.stream))
		return acc
	}
	s.eval(s.send(acc, c.rank+1, c.world, c.stream))
	total := s.recvNow(shape, dt, c.rank+1, c.world, c.stream)
	if c.pos > 0 {
		s.eval(s.send(total, c.rank-1, c.world, c.stream))
	}
	return total
}

// eval evaluates arrays, recording a failure.
func (s *scope) eval(arrays ...*mlx.Array) {
	if s.err != nil {
		return
	}
	if err := mlx.Eval(arrays...); err != nil {
		s.fail(err)
	}
}

// send sends x to rank dst; the result holds x's data and, evaluated,
// performs the send.
func (s *scope) send(x *mlx.Array, dst int, g *mlx.Group, st *mlx.Stream) *mlx.Array {
	return s.do(func() (*mlx.Array, error) { return mlx.Send(x, dst, g, st) })
}

// recvNow receives an array from rank src and evaluates it, so that it
// cannot run before or after another recv from the same rank.
func (s *scope) recvNow(shape []int, dt mlx.Dtype, src int, g *mlx.Group, st *mlx.Stream) *mlx.Array {
	r := s.do(func() (*mlx.Array, error) { return mlx.Recv(shape, dt, src, g, st) })
	s.eval(r)
	return r
}

// stageSum says how rank's stage of p sums over its ranks in g: nothing
// to sum for a stage of one rank, an all-sum over the whole group for a
// single stage, over a split of it where the back-end can split (mpi), and
// else a chain of neighbour exchanges.
func stageSum(p *loader.Placement, g *jaccl.Group) (*jaccl.Group, *chain, error) {
	switch {
	case p.TP == 1:
		return nil, nil, nil
	case p.PP == 1:
		return g, nil, nil
	case g.Backend() == jaccl.MPI:
		sub, err := g.Split(g.Rank()/p.TP, g.Rank()%p.TP)
		if err != nil {
			return nil, nil, fmt.Errorf("model: TP=%d × PP=%d all-sums within each stage over a split of the mpi group: %w", p.TP, p.PP, err)
		}
		return sub, nil, nil
	}
	return nil, &chain{world: g.MLX(), stream: g.Stream(), rank: g.Rank(), pos: g.Rank() % p.TP, k: p.TP}, nil
}

// checkBackend refuses a placement the back-end cannot run: a pipeline
// hands the hidden states on by send and recv, which MLX's nccl back-end
// does not have.
func checkBackend(p *loader.Placement, b jaccl.Backend) error {
	if p.PP > 1 && b == jaccl.NCCL {
		return fmt.Errorf("model: PP=%d hands the hidden states from stage to stage by send and recv, which MLX's nccl back-end does not have: run TP=%d alone over nccl, or launch with mpi or ring",
			p.PP, p.WorldSize)
	}
	return nil
}
