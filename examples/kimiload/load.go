package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/mlxdist/mlxdist/model"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
)

// figures are one rank's results. They travel to rank 0 as a float64
// vector (vector and fromVector), so every field is a number.
type figures struct {
	Rank      int     `json:"rank"`
	LoadS     float64 `json:"load_s"`
	Active    int64   `json:"active"`
	Peak      int64   `json:"mlx_peak"`
	PeakRSS   int64   `json:"peak_rss"`
	BytesRead int64   `json:"bytes_read"`
	// Shard is what the plan says the rank keeps; PlanPeak its predicted
	// peak.
	Shard    int64 `json:"shard"`
	PlanPeak int64 `json:"plan_peak"`
	// AfterFree is MLX's active memory once every array was freed.
	AfterFree int64 `json:"active_after_free"`
	Physical  int64 `json:"physical"`
	Limit     int64 `json:"guard_limit"`
	// GuardUsed is the guard's measurement after the load.
	GuardUsed int64 `json:"guard_used"`
	// Verified is 1 for PASS, 0 for FAIL, -1 when --verify was not given.
	Verified int `json:"verified"`
	Arrays   int `json:"arrays"`
	// Received and Sent are the bytes of parts streamed over the group.
	Received int64 `json:"streamed_in"`
	Sent     int64 `json:"streamed_out"`
	// StorageRead is what the load fetched from storage (Linux's
	// /proc/self/io read_bytes; -1 where unknown): on a cold page cache,
	// over BytesRead it is the load's read amplification.
	StorageRead int64 `json:"storage_read"`
}

// job is what rank 0 prints about the whole load.
type job struct {
	Model      string `json:"model"`
	ModelType  string `json:"model_type"`
	Checkpoint int64  `json:"checkpoint_bytes"`
	// Replicated is the part of the checkpoint every rank holds whole.
	Replicated int64     `json:"replicated_bytes"`
	Files      int       `json:"files"`
	Tensors    int       `json:"tensors"`
	Strategy   string    `json:"strategy"`
	Ranks      int       `json:"ranks"`
	Backend    string    `json:"backend"`
	WallS      float64   `json:"wall_s"`
	PerRank    []figures `json:"per_rank"`
}

const jsonMarker = "KIMILOAD_JSON "

// inferenceMarker starts the JSON line of the inference figures.
const inferenceMarker = "KIMILOAD_INFERENCE_JSON "

func load(ctx context.Context, o *options, stdout io.Writer) error {
	if err := mlx.Load(); err != nil {
		return err
	}
	// Under a launcher Init is strict and takes the launcher's back-end
	// unless --backend names one.
	g, err := jaccl.Init(ctx, jaccl.Options{Backend: o.backend, Timeout: o.timeout})
	if err != nil {
		return err
	}
	defer g.Close()
	rank, n := g.Rank(), g.Size()
	tag := fmt.Sprintf("[Rank %d/%d]", rank, n)
	pipelined := o.pp > 0 || o.placement != ""
	if pipelined && strings.Contains(o.model, "{rank}") {
		return fmt.Errorf("--pp and --placement place the layers of one checkpoint, not of per-rank shards ({rank} in --model)")
	}
	// Each node may keep only its own shard (see examples/reshard).
	o.model = strings.ReplaceAll(o.model, "{rank}", strconv.Itoa(rank))

	var guardOpts []memguard.Option
	if o.memoryGB > 0 {
		guardOpts = append(guardOpts, memguard.WithPhysical(int64(o.memoryGB*1e9)))
	} else if local := cluster.LocalRanks(); local > 1 {
		fmt.Fprintf(stdout, "%s %d ranks share this machine: each guards 1/%d of its memory\n", tag, local, local)
	}
	guard, err := loader.DefaultGuard(guardOpts...)
	if err != nil {
		return err
	}

	logOut := io.Discard
	if rank == 0 || o.verbose {
		logOut = stdout
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: dropTime}))

	// Every rank starts reading at the same moment, so the slowest rank's
	// time is the job's load time.
	if err := g.Barrier(ctx); err != nil {
		return err
	}
	if err := mlx.ResetPeakMemory(); err != nil {
		return err
	}
	var rules *loader.RuleSet
	if o.prompt != "" {
		// The model splits its weights by its config's rules: load with
		// the same ones.
		cfg, err := model.ReadConfig(o.model)
		if err != nil {
			return err
		}
		rules = cfg.Rules()
	}
	po := loader.PlanOptions{Rank: rank, WorldSize: n, Strategy: o.strategy, Rules: rules}
	if pipelined {
		p, err := placeRanks(ctx, o, g, guard)
		if err != nil {
			return err
		}
		if rank == 0 {
			if err := p.WriteTable(stdout); err != nil {
				return err
			}
		}
		po = p.PlanOptions(rank, po)
	}
	start := time.Now()
	storage0 := storageRead()
	stopSampling := func() error { return nil }
	if o.samples != "" {
		stopSampling = sampleMemory(ctx, strings.ReplaceAll(o.samples, "{rank}", strconv.Itoa(rank)), start)
		defer stopSampling()
	}
	lo := loader.Options{
		PlanOptions: po,
		Guard:       guard, IgnorePlan: o.ignorePlan, Workers: o.workers, Read: o.read,
		Progress: func(layer *loader.Layer) {
			st, err := guard.Status()
			if err != nil {
				log.Warn("guard", "rank", rank, "err", err)
				return
			}
			log.Info(fmt.Sprintf("%s eval %s", tag, layer.String()), "guard", st.String())
		},
	}
	var l *loader.ShardLoader
	if o.stream {
		cache := strings.ReplaceAll(o.cache, "{rank}", strconv.Itoa(rank))
		l, err = loader.OpenStream(ctx, g, o.model, loader.StreamOptions{Options: lo, Window: o.windowMB << 20, Cache: cache})
	} else {
		l, err = loader.Open(o.model, lo)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	streamed := l.Stream() != nil && !exists(o.model)
	if sp := l.Stream(); sp != nil && rank == 0 {
		fmt.Fprintf(stdout, "%s streaming: sources %v, receivers %v\n", tag, sp.Sources, sp.Receivers)
		for _, lk := range sp.Links {
			fmt.Fprintf(stdout, "%s   rank %d → rank %d: %d sections, %s\n", tag, lk.Source, lk.Receiver, lk.Sections, units.FormatGB(lk.Bytes))
		}
	}
	p := l.Plan()
	fmt.Fprintf(stdout, "%s plan: %s, %s: read %s, resident %s, peak %s (during %s); %s\n", tag, p.Strategy, p.Rules,
		units.FormatGB(p.Read), units.FormatGB(p.Resident), units.FormatGB(p.Peak), p.PeakSection, guard)
	if o.verbose && rank == 0 {
		if err := p.WriteTable(stdout); err != nil {
			return err
		}
	}

	arrays, err := l.LoadAll(ctx)
	if err != nil {
		return err
	}
	defer func() {
		for _, a := range arrays {
			a.Free()
		}
	}()
	elapsed := time.Since(start)
	if err := stopSampling(); err != nil {
		return fmt.Errorf("--samples: %w", err)
	}
	storage := int64(-1)
	if s0, s1 := storage0, storageRead(); s0 >= 0 && s1 >= 0 {
		storage = s1 - s0
	}

	ss := l.StreamStats()
	f := figures{Rank: rank, LoadS: elapsed.Seconds(), BytesRead: int64(l.BytesRead()), Received: int64(ss.Received), Sent: int64(ss.Sent),
		StorageRead: storage,
		Shard:       int64(p.Resident), PlanPeak: int64(p.Peak), Physical: guard.Physical(), Limit: guard.Limit(), Verified: -1,
		Arrays: len(arrays)}
	m, err := mlx.Memory()
	if err != nil {
		return err
	}
	f.Active, f.Peak = m.Active, m.Peak
	if f.PeakRSS, err = memguard.PeakResidentMemory(); err != nil {
		return err
	}
	st, err := guard.Status()
	if err != nil {
		return err
	}
	f.GuardUsed = st.Used
	fmt.Fprintf(stdout, "%s loaded %d arrays in %.2f s: active %s, peak %s, peak RSS %s, read %s; guard %s\n", tag, len(arrays),
		f.LoadS, units.FormatGB(f.Active), units.FormatGB(f.Peak), units.FormatGB(f.PeakRSS), units.FormatGB(f.BytesRead), st)

	// Verification reads whole tensors; it comes after the figures so it
	// does not inflate them.
	var verifyErr error
	if o.verify && streamed {
		// No files here: every part was checked as it arrived against the
		// CRC-32C its source computed over the bytes it read from its
		// files; a mismatch ends the load with loader.ErrChecksum.
		f.Verified = 1
		fmt.Fprintf(stdout, "%s verify PASS: %d streamed arrays matched their source's checksums of the files (%s received)\n", tag, len(arrays), units.FormatGB(f.Received))
	} else if o.verify {
		verifyErr = verify(o.model, p, arrays)
		if verifyErr != nil {
			f.Verified = 0
			fmt.Fprintf(stdout, "%s verify FAIL: %s\n", tag, oneLine(verifyErr))
		} else {
			f.Verified = 1
			fmt.Fprintf(stdout, "%s verify PASS: %d arrays equal their part of the files\n", tag, len(arrays))
		}
	}
	var answered *inference
	if o.prompt != "" && verifyErr == nil {
		// The model takes the arrays over, and frees them when done.
		given := maps.Clone(arrays)
		clear(arrays)
		if answered, err = answer(ctx, o, g, given); err != nil {
			return err
		}
	}
	for k, a := range arrays {
		a.Free()
		delete(arrays, k)
	}
	if err := mlx.ClearCache(); err != nil {
		return err
	}
	if f.AfterFree, err = mlx.ActiveMemory(); err != nil {
		return err
	}

	all, err := jaccl.AllGatherValue(ctx, g, f)
	if err != nil {
		return err
	}
	if rank == 0 {
		j := job{Model: o.model, ModelType: modelType(o.model), Checkpoint: p.Checkpoint, Replicated: p.Replicated, Files: countFiles(p),
			Tensors: countTensors(p), Strategy: p.Strategy.String(), Ranks: n, Backend: string(g.Backend())}
		for _, fr := range all {
			j.PerRank = append(j.PerRank, fr)
			j.WallS = max(j.WallS, fr.LoadS)
		}
		if err := writeTable(stdout, &j); err != nil {
			return err
		}
		if o.jsonOut {
			b, err := json.Marshal(&j)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s%s\n", jsonMarker, b)
		}
		if answered != nil {
			if err := writeInference(stdout, answered); err != nil {
				return err
			}
			if o.jsonOut {
				if err := writeInferenceJSON(stdout, answered); err != nil {
					return err
				}
			}
		}
		for _, fr := range j.PerRank {
			if fr.Verified == 0 && verifyErr == nil {
				verifyErr = fmt.Errorf("rank %d failed verification", fr.Rank)
			}
		}
	}
	return verifyErr
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// modelType reads config.json's model_type, "" when there is none.
func modelType(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return ""
	}
	var c struct {
		ModelType string `json:"model_type"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.ModelType
}

func countFiles(p *loader.Plan) int {
	seen := map[string]bool{}
	for _, s := range p.Sections {
		for _, t := range s.Tensors {
			seen[t.File] = true
		}
	}
	return len(seen)
}

func countTensors(p *loader.Plan) int {
	n := 0
	for _, s := range p.Sections {
		n += len(s.Tensors)
	}
	return n
}
