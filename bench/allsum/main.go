// Command allsum compares the all-sum of Go (package jaccl over package mlx)
// with Python's mx.distributed.all_sum: the same ring back-end, the same
// ranks on this machine, one run. It measures latency (a 4-byte all-sum,
// averaged over many iterations after a warm-up) and bandwidth (a 64 MB
// float32 all-sum) and prints a table with the Go/Python ratios.
//
//	go run ./bench/allsum --python .venv/bin/python
//
// Go is measured four ways: evaluating with mlx.Eval directly; through
// Group.Eval, which adds the deadline that turns a hung peer into an error;
// the same loop inside one mlx.Do (no trip between threads per all-sum);
// and jaccl.AllSumSlice, one trip per all-sum, from and into Go memory (its
// bandwidth includes those two copies).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/mlx"
)

type params struct {
	Iters, Warmup, MB, BWIters int
}

type result struct {
	Impl         string  `json:"impl"`
	LatencyUS    float64 `json:"latency_us"`
	BandwidthGBs float64 `json:"bandwidth_gbs"`
}

func main() {
	fs := flag.NewFlagSet("allsum", flag.ContinueOnError)
	var p params
	fs.IntVar(&p.Iters, "iters", 2000, "timed iterations of the 4-byte all-sum")
	fs.IntVar(&p.Warmup, "warmup", 200, "untimed iterations before the latency run")
	fs.IntVar(&p.MB, "mb", 64, "size of the bandwidth all-sum in MB (10^6 bytes)")
	fs.IntVar(&p.BWIters, "bw-iters", 10, "timed iterations of the bandwidth all-sum")
	n := fs.Int("n", 2, "ranks on this machine")
	python := fs.String("python", "", "Python interpreter with MLX (default: .venv/bin/python of the module)")
	rank := fs.String("rank", "", "internal: run as a rank, measuring through `eval` (mlx) or group")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: allsum [flags]

Runs N local ring ranks of Go and then of Python MLX, times all_sum in each,
and prints latency, bandwidth and the Go/Python ratios.

example:
  go run ./bench/allsum --python .venv/bin/python -n 2

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	var err error
	if *rank != "" {
		err = runRank(*rank, p)
	} else {
		err = drive(p, *n, *python, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "allsum:", err)
		os.Exit(1)
	}
}

// drive launches each implementation's ranks in turn and prints the table.
func drive(p params, n int, python string, w io.Writer) error {
	if python == "" {
		python = filepath.Join(".venv", "bin", "python")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	script, err := pythonScript()
	if err != nil {
		return err
	}
	args := []string{"--iters", strconv.Itoa(p.Iters), "--warmup", strconv.Itoa(p.Warmup), "--mb", strconv.Itoa(p.MB), "--bw-iters", strconv.Itoa(p.BWIters)}
	runs := []struct {
		name string
		cmd  []string
	}{
		{"python", append([]string{python, script}, args...)},
		{"go mlx.Eval", append([]string{self, "--rank", "mlx"}, args...)},
		{"go Group.Eval, loop in Do", append([]string{self, "--rank", "do"}, args...)},
		{"go Group.Eval", append([]string{self, "--rank", "group"}, args...)},
		{"go AllSumSlice", append([]string{self, "--rank", "slice"}, args...)},
	}
	results := map[string]result{}
	for _, r := range runs {
		res, err := launch(r.cmd, n)
		if err != nil {
			return fmt.Errorf("%s: %w", r.name, err)
		}
		results[r.name] = res
	}

	py := results["python"]
	fmt.Fprintf(w, "all_sum over ring, %d local ranks, %d CPUs; latency: 4 bytes, mean of %d after %d warm-up; bandwidth: %s float32, mean of %d\n\n",
		n, runtime.NumCPU(), p.Iters, p.Warmup, units.FormatGB(int64(p.MB)*1e6), p.BWIters)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "implementation\tlatency µs\tvs python\tbandwidth GB/s\tvs python\t")
	for _, r := range runs {
		res := results[r.name]
		fmt.Fprintf(tw, "%s\t%.1f\t%.3f×\t%.3f\t%.3f×\t\n", r.name, res.LatencyUS, res.LatencyUS/py.LatencyUS, res.BandwidthGBs, res.BandwidthGBs/py.BandwidthGBs)
	}
	return tw.Flush()
}

// pythonScript finds allsum.py next to this program's source.
func pythonScript() (string, error) {
	for _, c := range []string{filepath.Join("bench", "allsum", "allsum.py"), "allsum.py"} {
		if _, err := os.Stat(c); err == nil {
			return filepath.Abs(c)
		}
	}
	return "", errors.New("allsum.py not found: run from the module root")
}

// launch runs cmd as n local ring ranks and returns rank 0's result line.
func launch(cmd []string, n int) (result, error) {
	var out, errOut bytes.Buffer
	err := cluster.Launch(context.Background(), cluster.LaunchConfig{Command: cmd, N: n, Backend: jaccl.Ring, Stdout: &out, Stderr: &errOut})
	if err != nil {
		return result{}, fmt.Errorf("%w\n%s", err, errOut.String())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "[0] ")
		if !ok || !strings.HasPrefix(line, "{") {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return result{}, fmt.Errorf("rank 0 printed %q: %w", line, err)
		}
		return r, nil
	}
	return result{}, fmt.Errorf("rank 0 printed no result:\n%s%s", out.String(), errOut.String())
}

// runRank measures as one rank. mode "mlx" evaluates with mlx.Eval, the
// cost floor of the binding; "group" with Group.Eval and its deadline (a
// trip to build the all-sum, one to evaluate it); "do" the same loop inside
// one mlx.Do; "slice" jaccl.AllSumSlice, one trip that builds, evaluates
// and reads the all-sum, from and into Go memory.
func runRank(mode string, p params) error {
	ctx := context.Background()
	g, err := jaccl.Init(ctx, jaccl.Options{Backend: jaccl.Ring, Strict: true})
	if err != nil {
		return err
	}
	defer g.Close()
	eval := func(a *mlx.Array) error { return mlx.Eval(a) }
	switch mode {
	case "mlx":
	case "group", "do", "slice":
		eval = func(a *mlx.Array) error { return g.Eval(ctx, a) }
	default:
		return fmt.Errorf("unknown rank mode %q", mode)
	}
	slices := map[*mlx.Array][]float32{}
	step := func(x *mlx.Array) error {
		if mode == "slice" {
			_, err := jaccl.AllSumSlice(ctx, g, slices[x])
			return err
		}
		y, err := g.AllSum(x)
		if err != nil {
			return err
		}
		defer y.Free()
		return eval(y)
	}
	timed := func(x *mlx.Array, iters int) (time.Duration, error) {
		start := time.Now()
		loop := func() error {
			for range iters {
				if err := step(x); err != nil {
					return err
				}
			}
			return nil
		}
		var err error
		if mode == "do" {
			// The whole loop runs on the MLX thread, as Python's runs on
			// its main thread: no trip between threads per all-sum.
			err = mlx.Do(loop)
		} else {
			err = loop()
		}
		return time.Since(start), err
	}

	small, err := mlx.FromSlice([]float32{1})
	if err != nil {
		return err
	}
	defer small.Free()
	big, err := mlx.FromSlice(make([]float32, p.MB*1_000_000/4))
	if err != nil {
		return err
	}
	defer big.Free()
	if err := mlx.Eval(small, big); err != nil {
		return err
	}
	slices[small], slices[big] = []float32{1}, make([]float32, p.MB*1_000_000/4)

	if _, err := timed(small, p.Warmup); err != nil {
		return err
	}
	lat, err := timed(small, p.Iters)
	if err != nil {
		return err
	}
	if _, err := timed(big, 2); err != nil {
		return err
	}
	bw, err := timed(big, p.BWIters)
	if err != nil {
		return err
	}
	if g.Rank() == 0 {
		r := result{
			Impl:         "go-" + mode,
			LatencyUS:    float64(lat.Microseconds()) / float64(p.Iters),
			BandwidthGBs: float64(big.Nbytes()) * float64(p.BWIters) / bw.Seconds() / 1e9,
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Println(string(b))
	}
	return nil
}
