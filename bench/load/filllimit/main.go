// Command filllimit measures the fill limit of the load benchmark: how
// fast one rank can copy exactly the bytes the Direct strategy reads for
// it (Plan.Ranges of every tensor) from the page cache into freshly
// allocated memory, with the loader's threads, and nothing else — no MLX,
// no sections, no arrays. A loader that reaches this is copying at the
// speed the machine allows.
//
//	filllimit --model DIR --ranks 2 --rank 0 --threads 4
//
// The destination is one anonymous mapping of the rank's bytes, prepared
// as MLX's fill prepares an array (huge pages, faulted in with one call)
// and timed with the copy. The threads take 8 MiB pieces of it in file
// order, prepare them, and fill them as the loader's default read mode
// does: ranges of 256 KiB and more by pread, shorter ones copied out of
// the file's mapping. Start one process per rank at once, as run.sh does,
// and take the slowest rank's time. It prints one line,
// FILLLIMIT_JSON {"rank", "ranks", "threads", "bytes", "load_s"}.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/safetensors"
)

// pieceSize matches the loader's: the unit one thread copies at a time.
const pieceSize = 8 << 20

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "filllimit:", err)
		os.Exit(1)
	}
}

// longRun is the length from which a range is read with pread; shorter
// ones (the rows of a part split on its last axis, often a few hundred
// bytes) are copied out of the file's mapping, as the loader's default
// read mode does: one pread per row would time the system calls.
const longRun = 256 << 10

// piece is a run of consecutive destination bytes, pos onwards, filled
// from ranges of one file.
type piece struct {
	f      *safetensors.File
	ranges []safetensors.Range
	pos    int64
}

func (p *piece) size() int64 {
	var n int64
	for _, r := range p.ranges {
		n += r.Length
	}
	return n
}

// copyInto fills the piece's bytes of dst: long ranges by pread, each run
// of short ones by one copy from the mapping.
func (p *piece) copyInto(dst []byte) error {
	pos := p.pos
	short := p.ranges[:0:0]
	var shortLen int64
	flush := func() error {
		if len(short) == 0 {
			return nil
		}
		if _, err := p.f.ReadRanges(short, dst[pos:pos+shortLen]); err != nil {
			return err
		}
		pos += shortLen
		short, shortLen = short[:0], 0
		return nil
	}
	for _, r := range p.ranges {
		if r.Length < longRun {
			short = append(short, r)
			shortLen += r.Length
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if _, err := p.f.ReadRangesPread([]safetensors.Range{r}, dst[pos:pos+r.Length]); err != nil {
			return err
		}
		pos += r.Length
	}
	return flush()
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("filllimit", flag.ContinueOnError)
	model := fs.String("model", "", "checkpoint `DIR`")
	ranks := fs.Int("ranks", 1, "tensor-parallel world size")
	rank := fs.Int("rank", 0, "this process's rank")
	threads := fs.Int("threads", 4, "copying threads (the loader's --workers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" || *threads < 1 || *rank < 0 || *rank >= *ranks {
		return fmt.Errorf("want --model DIR, --threads ≥ 1 and 0 ≤ --rank < --ranks (see -h)")
	}
	d, err := safetensors.OpenDir(*model)
	if err != nil {
		return err
	}
	defer d.Close()
	plan, err := loader.NewPlan(d.Tensors(), loader.PlanOptions{Rank: *rank, WorldSize: *ranks})
	if err != nil {
		return err
	}
	var work []piece
	var total int64
	for _, sp := range plan.Sections {
		for i := range sp.Tensors {
			tp := &sp.Tensors[i]
			_, f, ok := d.Tensor(tp.Name)
			if !ok {
				return fmt.Errorf("tensor %q of the plan is not in %s", tp.Name, *model)
			}
			cur := piece{f: f, pos: total}
			var curLen int64
			for r := range plan.Ranges(tp) {
				for r.Length > 0 {
					n := min(r.Length, pieceSize-curLen)
					cur.ranges = append(cur.ranges, safetensors.Range{Offset: r.Offset, Length: n})
					curLen += n
					total += n
					r.Offset, r.Length = r.Offset+n, r.Length-n
					if curLen == pieceSize {
						work = append(work, cur)
						cur, curLen = piece{f: f, pos: total}, 0
					}
				}
			}
			if curLen > 0 {
				work = append(work, cur)
			}
		}
	}

	start := time.Now()
	dst, err := freshMemory(total)
	if err != nil {
		return err
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *threads)
	for range *threads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(work)) {
					return
				}
				p := &work[i]
				prepare(dst[p.pos : p.pos+p.size()])
				if err := p.copyInto(dst); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	b, err := json.Marshal(map[string]any{"rank": *rank, "ranks": *ranks, "threads": *threads, "bytes": total,
		"load_s": elapsed.Seconds()})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "FILLLIMIT_JSON %s\n", b)
	return nil
}
