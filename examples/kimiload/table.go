package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/mlxdist/mlxdist/internal/ckptgen"
	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/safetensors"
)

// writeTable prints the seed's loading benchmark table ("로딩 벤치마크
// 결과") with one column per rank.
func writeTable(w io.Writer, j *job) error {
	gb := units.FormatGB
	mt := j.ModelType
	if mt == "" {
		mt = "unknown type"
	}
	fmt.Fprintf(w, "\nLoad results\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s (%s, %s in %d shard files, %d tensors)\n", j.Model, mt, gb(j.Checkpoint), j.Files, j.Tensors)
	fmt.Fprintf(tw, "ranks\t%d\n", j.Ranks)
	fmt.Fprintf(tw, "back-end\t%s\n", j.Backend)
	fmt.Fprintf(tw, "strategy\t%s\n", j.Strategy)
	fmt.Fprintf(tw, "load time\t%.2f s (slowest rank), %s/s of checkpoint\n", j.WallS, gb(int64(float64(j.Checkpoint)/max(j.WallS, 1e-9))))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	// Labels padded to one width read left-aligned in a right-aligned table.
	row := func(label string, cell func(f figures) string) {
		fmt.Fprintf(tw, "%-34s\t", label)
		for _, f := range j.PerRank {
			fmt.Fprintf(tw, "%s\t", cell(f))
		}
		fmt.Fprintln(tw)
	}
	row("", func(f figures) string { return fmt.Sprintf("rank %d", f.Rank) })
	row("load time", func(f figures) string { return fmt.Sprintf("%.2f s", f.LoadS) })
	row("active memory", func(f figures) string { return gb(f.Active) })
	row("peak memory (MLX)", func(f figures) string { return gb(f.Peak) })
	row("peak memory (RSS)", func(f figures) string { return gb(f.PeakRSS) })
	row("free memory (physical − MLX peak)", func(f figures) string { return gb(f.Physical - min(f.Physical, f.Peak)) })
	row("guard", func(f figures) string {
		state := "ok"
		if f.GuardUsed > f.Limit {
			state = "EXCEEDED"
		}
		return fmt.Sprintf("%s, limit %s", state, gb(f.Limit))
	})
	row("bytes read", func(f figures) string { return gb(f.BytesRead) })
	if slices.ContainsFunc(j.PerRank, func(f figures) bool { return f.Received+f.Sent > 0 }) {
		row("streamed in / out over the group", func(f figures) string { return gb(f.Received) + " / " + gb(f.Sent) })
	}
	row("shard (planned)", func(f figures) string { return gb(f.Shard) })
	row("peak (planned)", func(f figures) string { return gb(f.PlanPeak) })
	row("peak / shard", func(f figures) string { return ratio(f.Peak, f.Shard) })
	row("active after free", func(f figures) string { return gb(f.AfterFree) })
	row("verify", func(f figures) string {
		switch f.Verified {
		case 1:
			return "PASS"
		case 0:
			return "FAIL"
		}
		return "not run"
	})
	return tw.Flush()
}

func ratio(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(a)/float64(b))
}

// The seed's measurement: Kimi K2.5 loaded with mlx-lm's eval-shard-eval
// over jaccl, TP=2, two 512 GB Mac Studios.
const (
	seedCheckpoint = 612e9
	seedActive     = 309.91e9
	seedPeak       = 319.98e9
	seedLoadS      = 96
)

// planOnly prints, without reading a weight, what each node would read,
// keep and peak at for every TP size of o.tp and the direct and
// eval-shard-eval strategies.
func planOnly(o *options, w io.Writer) error {
	var (
		tensors []safetensors.TensorInfo
		rules   *loader.RuleSet
		title   string
	)
	if o.describe != "" {
		spec := ckptgen.KimiK25()
		for _, t := range spec.Tensors() {
			dt, err := safetensors.ParseDtype(t.Dtype)
			if err != nil {
				return fmt.Errorf("tensor %q: %w", t.Name, err)
			}
			tensors = append(tensors, safetensors.TensorInfo{Name: t.Name, Dtype: dt, Shape: t.Shape, End: t.Bytes})
		}
		rules = loader.DeepSeekV3Rules(spec.Heads)
		group := 0
		if spec.Quant != nil {
			group = spec.Quant.GroupSize
		}
		title = fmt.Sprintf("Kimi K2.5, described without files: %d tensors, %s at %d bits, group size %d\n"+
			"(the seed's checkpoint is %s: its own conversion; the plan's figures are for this tensor list)",
			len(tensors), units.FormatGB(sum(tensors)), spec.Quant.Bits, group, units.FormatGB(seedCheckpoint))
	} else {
		d, err := safetensors.OpenDir(o.model)
		if err != nil {
			return err
		}
		tensors = d.Tensors()
		d.Close()
		title = fmt.Sprintf("%s: %d tensors, %s", o.model, len(tensors), units.FormatGB(sum(tensors)))
	}
	if o.pp > 0 || o.placement != "" {
		var cfg *model.Config
		var err error
		if o.describe != "" {
			cfg, err = describedConfig(ckptgen.KimiK25().Config())
		} else {
			cfg, err = model.ReadConfig(o.model)
		}
		if err != nil {
			return err
		}
		if rules == nil {
			rules = cfg.Rules()
		}
		fmt.Fprintln(w, title)
		return planPlacements(o, w, tensors, cfg, rules)
	}
	mem := int64(512e9)
	if o.memoryGB > 0 {
		mem = int64(o.memoryGB * 1e9)
	}
	zero := func() (int64, error) { return 0, nil }
	guard, err := memguard.New(memguard.WithPhysical(mem), memguard.WithUsed("active", zero), memguard.WithLookupEnv(os.LookupEnv))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s\nper node: %s\n\n", title, guard)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "strategy\tTP\tread/node\tcold disk/node\tresident/node\tpeak/node\tpeak/shard\tfits\t\n")
	var sections []string
	for _, n := range o.tp {
		for _, s := range []loader.Strategy{loader.Direct, loader.EvalShardEval} {
			// Pages of 16 KiB, as on the Apple-silicon nodes the plan is for.
			p, err := loader.NewPlan(tensors, loader.PlanOptions{WorldSize: n, Strategy: s, Rules: rules, PageSize: 16384})
			if err != nil {
				return fmt.Errorf("TP=%d %s: %w", n, s, err)
			}
			fits := "yes"
			if err := guard.Fits(p.Peak); err != nil {
				var ex *memguard.ExceededError
				if !errors.As(err, &ex) {
					return err
				}
				fits = "NO: over " + units.FormatGB(ex.Limit)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s, n, units.FormatGB(p.Read), units.FormatGB(p.Disk), units.FormatGB(p.Resident),
				units.FormatGB(p.Peak), ratio(int64(p.Peak), int64(p.Resident)), fits)
			if o.verbose {
				var b strings.Builder
				fmt.Fprintf(&b, "\nTP=%d, %s, rank 0:\n", n, s)
				if err := p.WriteTable(&b); err != nil {
					return err
				}
				sections = append(sections, b.String())
			}
		}
		if o.describe != "" && n == 2 {
			fmt.Fprintf(tw, "seed, measured\t2\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				units.FormatGB(seedCheckpoint), units.FormatGB(seedCheckpoint), units.FormatGB(seedActive), units.FormatGB(seedPeak),
				fmt.Sprintf("%.3f", seedPeak/(seedCheckpoint/2)), fmt.Sprintf("yes, ~%d s", seedLoadS))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if o.describe != "" {
		fmt.Fprintf(w, "\nseed, measured: mlx-lm eval-shard-eval over jaccl on two 512 GB Mac Studios; resident is the shard a node keeps (the seed's \"active\"); the seed's peak/shard divides by half of its %s; "+
			"the seed's read is every byte on every node, as MLX's loader reads whole tensors; "+
			"cold disk/node counts the 16 KiB pages a node's reads touch: a sharded-to-all part (half of every row) touches all of them\n", units.FormatGB(seedCheckpoint))
	}
	for _, s := range sections {
		fmt.Fprint(w, s)
	}
	if o.stream {
		return streamPlans(o, tensors, rules, w)
	}
	return nil
}

// streamPlans prints, for every TP size, what streaming from rank 0 alone
// sends over each link and how long it should take, beside copying the
// whole checkpoint to every other node first.
func streamPlans(o *options, tensors []safetensors.TensorInfo, rules *loader.RuleSet, w io.Writer) error {
	disk, link := o.diskGBps*1e9, o.linkGBps*1e9
	neighbours := loader.NeighboursOnly(o.backend)
	for _, n := range o.tp {
		if n < 2 {
			continue
		}
		p, err := loader.NewPlan(tensors, loader.PlanOptions{WorldSize: n, Rules: rules, PageSize: 16384})
		if err != nil {
			return fmt.Errorf("TP=%d: %w", n, err)
		}
		fmt.Fprintf(w, "\nTP=%d streamed from rank 0 alone (%s):\n", n, map[bool]string{true: "ring: neighbours only", false: "every rank reachable"}[neighbours])
		sp, err := loader.NewStreamPlan(p, []int{0}, neighbours, o.windowMB<<20)
		if err != nil {
			fmt.Fprintf(w, "  cannot stream: %v\n", err)
			continue
		}
		if err := sp.WriteTable(w, p.Read, disk, link); err != nil {
			return err
		}
		copyS := float64(p.Checkpoint) / link
		fmt.Fprintf(w, "copying the %s checkpoint to each of %d nodes first takes ≥ %.1f s per link before any load\n",
			units.FormatGB(p.Checkpoint), n-1, copyS)
	}
	return nil
}

func sum(ts []safetensors.TensorInfo) int64 {
	var n int64
	for _, t := range ts {
		n += t.Size()
	}
	return n
}
