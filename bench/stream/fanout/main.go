// Command fanout measures what rank 0 sends its ring neighbours over MLX's
// ring back-end, the link side of a streamed load with one source: the same
// bytes to each receiver (rank 1, and rank 2 in a job of 3) in chunks, the
// sends queued either on one CPU stream (each send waits for the one before
// it) or on one stream per receiver (as loader.OpenStream queues them). Run
// it as the ranks of a 2- or 3-rank job; rank 0 prints one FANOUT_JSON line.
//
//	launch -n 2 -- fanout --bytes 2000000000
//	launch -n 3 -- fanout --bytes 2000000000 --streams one
//	launch -n 3 -- fanout --bytes 2000000000 --streams per-peer
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/mlx"
)

func main() {
	total := flag.Int64("bytes", 1e9, "bytes to send each receiver")
	chunk := flag.Int("chunk", 64<<20, "bytes per send")
	streams := flag.String("streams", "per-peer", "one (every send on one CPU stream) or per-peer (a CPU stream per receiver)")
	flag.Parse()
	if err := run(*total, *chunk, *streams); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

func run(total int64, chunk int, streams string) error {
	if streams != "one" && streams != "per-peer" {
		return fmt.Errorf("--streams %q: want one or per-peer", streams)
	}
	if total <= 0 || chunk <= 0 {
		return errors.New("--bytes and --chunk must be positive")
	}
	if err := mlx.Load(); err != nil {
		return err
	}
	ctx := context.Background()
	g, err := jaccl.Init(ctx, jaccl.Options{Backend: jaccl.Ring, Strict: true})
	if err != nil {
		return err
	}
	defer g.Close()
	if g.Size() != 2 && g.Size() != 3 {
		return fmt.Errorf("run it as 2 or 3 ranks, not %d", g.Size())
	}
	receivers := []int{1}
	if g.Size() == 3 {
		receivers = append(receivers, 2)
	}
	var sizes []int
	for left := total; left > 0; left -= int64(chunk) {
		sizes = append(sizes, int(min(left, int64(chunk))))
	}
	buf, err := mlx.NewArrayBytes(make([]byte, chunk), []int{chunk}, mlx.Uint8)
	if err != nil {
		return err
	}
	defer buf.Free()
	if err := mlx.Eval(buf); err != nil {
		return err
	}
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	start := time.Now()
	if g.Rank() == 0 {
		err = send(ctx, g, buf, sizes, receivers, streams)
	} else {
		err = recv(ctx, g, sizes)
	}
	if err != nil {
		return err
	}
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	wall := time.Since(start).Seconds()
	if g.Rank() == 0 {
		b, _ := json.Marshal(map[string]any{"streams": streams, "receivers": len(receivers), "bytes_per_receiver": total,
			"chunk": chunk, "wall_s": wall, "gbps": float64(len(receivers)) * float64(total) / wall / 1e9})
		fmt.Println("FANOUT_JSON " + string(b))
	}
	return nil
}

// send queues the chunks to the receivers in turn, at most 8 sends
// outstanding (MLX blocks an asynchronous evaluation past ten active
// tasks), and waits for the oldest.
func send(ctx context.Context, g *jaccl.Group, buf *mlx.Array, sizes, receivers []int, mode string) error {
	st := map[int]*mlx.Stream{}
	var shared *mlx.Stream
	for _, dst := range receivers {
		if shared != nil {
			st[dst] = shared
			continue
		}
		s, err := mlx.NewStream(mlx.CPU)
		if err != nil {
			return err
		}
		defer s.Free()
		st[dst] = s
		if mode == "one" {
			shared = s
		}
	}
	var pending []*mlx.Array
	wait := func() error {
		a := pending[0]
		pending = pending[1:]
		defer a.Free()
		return g.Eval(ctx, a)
	}
	for _, n := range sizes {
		part, err := mlx.Slice(buf, []int{0}, []int{n}, nil)
		if err != nil {
			return err
		}
		for _, dst := range receivers {
			s, err := mlx.Send(part, dst, g.MLX(), st[dst])
			if err != nil {
				part.Free()
				return err
			}
			if err := mlx.AsyncEval(s); err != nil {
				part.Free()
				return err
			}
			pending = append(pending, s)
			for len(pending) >= 8 {
				if err := wait(); err != nil {
					part.Free()
					return err
				}
			}
		}
		part.Free()
	}
	for len(pending) > 0 {
		if err := wait(); err != nil {
			return err
		}
	}
	return nil
}

func recv(ctx context.Context, g *jaccl.Group, sizes []int) error {
	for _, n := range sizes {
		a, err := g.Recv([]int{n}, mlx.Uint8, 0)
		if err != nil {
			return err
		}
		err = g.Eval(ctx, a)
		a.Free()
		if err != nil {
			return err
		}
	}
	return nil
}
