package shard

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/mlxdist/mlxdist/internal/units"
)

// DefaultStreamWindow is the bytes of parts a source keeps in flight when
// StreamOptions.Window is zero.
const DefaultStreamWindow = 256 << 20

// StreamLink is what one source sends one receiver.
type StreamLink struct {
	Source   int   `json:"source"`
	Receiver int   `json:"receiver"`
	Sections int   `json:"sections"`
	Bytes    int64 `json:"bytes"`
}

// StreamPlan says which rank sends which section of whose shard. Ranks
// that hold the checkpoint are sources; the others receive their shard
// from them, section by section. A receiver's section goes to the source
// with the fewest bytes assigned so far among those that can reach it
// (over ring and jaccl-ring only neighbours can), lowest rank first on a
// tie: every rank computes the same plan, so sends and receives pair up.
type StreamPlan struct {
	Sources   []int `json:"sources"`
	Receivers []int `json:"receivers"`
	// Window is the bytes a source may hold in flight; SourceExtra what
	// that costs a source at most: the window (or the most a source sends,
	// when that is less), or the largest part when that is larger.
	Window      int64        `json:"window"`
	SourceExtra int64        `json:"source_extra"`
	Links       []StreamLink `json:"links"`

	// assign[i][r] is the source of section i of receiver r's shard, -1
	// for a source.
	assign [][]int
	// read[s] is what source s reads for the receivers.
	read map[int]int64
}

// NewStreamPlan plans the streaming of p's sections (any rank's plan: every
// rank's part of a tensor has the same size) from sources to every other
// rank of p.WorldSize.
func NewStreamPlan(p *Plan, sources []int, neighboursOnly bool, window int64) (*StreamPlan, error) {
	n := p.WorldSize
	if window <= 0 {
		window = DefaultStreamWindow
	}
	isSource := make([]bool, n)
	for _, s := range sources {
		if s < 0 || s >= n {
			return nil, fmt.Errorf("loader: source rank %d is not in a world of %d", s, n)
		}
		isSource[s] = true
	}
	sp := &StreamPlan{Window: window, read: map[int]int64{}}
	for r := range n {
		if isSource[r] {
			sp.Sources = append(sp.Sources, r)
		} else {
			sp.Receivers = append(sp.Receivers, r)
		}
	}
	if len(sp.Sources) == 0 {
		return nil, errors.New("loader: no rank holds the checkpoint, so none can stream it")
	}
	reach := func(s, r int) bool {
		return !neighboursOnly || (s+1)%n == r || (r+1)%n == s
	}
	for _, r := range sp.Receivers {
		if !slices.ContainsFunc(sp.Sources, func(s int) bool { return reach(s, r) }) {
			return nil, fmt.Errorf("loader: rank %d cannot receive its shard: the ring back-end sends only between neighbouring ranks and neither rank %d nor rank %d holds the checkpoint; give one of them the checkpoint or use the jaccl back-end",
				r, (r+n-1)%n, (r+1)%n)
		}
	}
	load := map[int]int64{}
	links := map[[2]int]*StreamLink{}
	var largest int64
	sp.assign = make([][]int, len(p.Sections))
	for i := range p.Sections {
		sec := &p.Sections[i]
		var bytes int64
		for _, tp := range sec.Tensors {
			bytes += tp.ShardBytes
		}
		sp.assign[i] = make([]int, n)
		for r := range n {
			sp.assign[i][r] = -1
			if isSource[r] {
				continue
			}
			best := -1
			for _, s := range sp.Sources {
				if reach(s, r) && (best < 0 || load[s] < load[best]) {
					best = s
				}
			}
			sp.assign[i][r] = best
			load[best] += bytes
			l := links[[2]int{best, r}]
			if l == nil {
				l = &StreamLink{Source: best, Receiver: r}
				links[[2]int{best, r}] = l
			}
			l.Sections++
			l.Bytes += bytes
			for _, tp := range sec.Tensors {
				largest = max(largest, tp.ShardBytes)
			}
		}
	}
	for _, l := range links {
		sp.Links = append(sp.Links, *l)
		sp.read[l.Source] += l.Bytes
	}
	slices.SortFunc(sp.Links, func(a, b StreamLink) int {
		if a.Source != b.Source {
			return a.Source - b.Source
		}
		return a.Receiver - b.Receiver
	})
	if len(sp.Receivers) > 0 {
		// A window larger than what any source sends is never filled.
		var most int64
		for _, b := range sp.read {
			most = max(most, b)
		}
		sp.SourceExtra = max(min(window, most), largest)
	}
	return sp, nil
}

// Source returns the rank that sends section i (in plan order) of rank r's
// shard, or -1 when r reads its own.
func (sp *StreamPlan) Source(i, r int) int { return sp.assign[i][r] }

// Reads is what source s reads from its files for the receivers.
func (sp *StreamPlan) Reads(s int) int64 { return sp.read[s] }

// StreamPrediction is a streamed load's predicted time at given
// bandwidths: every source reads its own shard and the parts it sends, and
// sends them over its links one after the other while it reads.
type StreamPrediction struct {
	DiskBps, LinkBps float64
	// Disk and Link are the slowest source's times for its reads and its
	// sends; Total is the larger, since the two overlap.
	Disk, Link, Total time.Duration
}

// Predict returns the predicted time when every source reads at diskBps
// bytes per second and sends at linkBps; own is what a source reads for
// its own shard.
func (sp *StreamPlan) Predict(own int64, diskBps, linkBps float64) StreamPrediction {
	pr := StreamPrediction{DiskBps: diskBps, LinkBps: linkBps}
	secs := func(b int64, bps float64) time.Duration {
		if bps <= 0 {
			return 0
		}
		return time.Duration(float64(b) / bps * float64(time.Second))
	}
	for _, s := range sp.Sources {
		pr.Disk = max(pr.Disk, secs(own+sp.read[s], diskBps))
		pr.Link = max(pr.Link, secs(sp.read[s], linkBps))
	}
	pr.Total = max(pr.Disk, pr.Link)
	return pr
}

// WriteTable prints one line per link, then the prediction for own bytes
// read by each source for itself at the given bandwidths (bytes/s).
func (sp *StreamPlan) WriteTable(w io.Writer, own int64, diskBps, linkBps float64) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "source\treceiver\tsections\tbytes\t\n")
	for _, l := range sp.Links {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t\n", l.Source, l.Receiver, l.Sections, units.FormatGB(l.Bytes))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	pr := sp.Predict(own, diskBps, linkBps)
	_, err := fmt.Fprintf(w, "stream: sources %v, receivers %v, source window %s; at %s/s disk and %s/s link: reads %s, sends %s, load ≈ %s\n",
		sp.Sources, sp.Receivers, units.FormatGB(sp.SourceExtra), units.FormatGB(int64(diskBps)), units.FormatGB(int64(linkBps)),
		pr.Disk.Round(time.Millisecond), pr.Link.Round(time.Millisecond), pr.Total.Round(time.Millisecond))
	return err
}
