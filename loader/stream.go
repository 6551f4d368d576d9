package loader

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mlxdist/mlxdist/internal/atomicfile"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"github.com/mlxdist/mlxdist/loader/shard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/safetensors"
)

// DefaultStreamWindow is shard.DefaultStreamWindow.
const DefaultStreamWindow = shard.DefaultStreamWindow

// maxStreamedFile bounds the other files of a checkpoint (config.json, the
// tokenizer) that sources send receivers along with the tensor index.
const maxStreamedFile = 64 << 20

// StreamOptions configure OpenStream.
type StreamOptions struct {
	Options
	// Window bounds the bytes of parts a source has read and not yet seen
	// delivered; a part larger than the window travels alone. 0 means
	// DefaultStreamWindow. The source's plan counts it in its peak.
	Window int64
	// Cache, on a receiver, is a directory where what it receives is also
	// written as its own shard checkpoint (Reshard's layout, stamp last),
	// so that the next load on that node reads exactly its bytes locally.
	Cache string
}

// ErrStream is matched by every *StreamError.
var ErrStream = errors.New("loader: streaming over the group failed")

// StreamError is a failure of one section's transfer between two ranks.
type StreamError struct {
	Section string
	// Peer is the rank on the other end: the source a receiver waited on,
	// or the receiver a source sent to.
	Peer int
	// Op is "receiving from" or "sending to".
	Op  string
	Err error
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("loader: section %s: %s rank %d: %v", e.Section, e.Op, e.Peer, e.Err)
}

// Unwrap gives the cause (a *jaccl.BackendError for a lost peer).
func (e *StreamError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrStream) true.
func (e *StreamError) Is(target error) bool { return target == ErrStream }

// ErrStalled is matched by the error of a transfer that made no progress
// within (slightly less than) the group's timeout.
var ErrStalled = errors.New("loader: a streamed transfer stalled")

// ErrChecksum is matched by the error of a part whose bytes do not hash to
// the checksum its source sent.
var ErrChecksum = errors.New("loader: a streamed part does not match its source's checksum")

// NeighboursOnly reports whether the back-end can send only between
// neighbouring ranks (rank±1 modulo the size).
func NeighboursOnly(b jaccl.Backend) bool { return b == jaccl.Ring || b == jaccl.JACCLRing }

// StreamStats are a streamed load's figures so far.
type StreamStats struct {
	// Sent and Received are the bytes of parts this rank sent and
	// received (checksums and the index not counted).
	Sent, Received int64
	// InFlightPeak is the most bytes of parts a source held read and not
	// yet delivered.
	InFlightPeak int64
}

// streamIndex is what a source tells a receiver about the checkpoint: the
// tensors (their file positions dropped) and its other small files.
type streamIndex struct {
	Tensors []streamTensor    `json:"tensors"`
	Files   map[string][]byte `json:"files,omitempty"`
}

type streamTensor struct {
	Name  string            `json:"name"`
	Dtype safetensors.Dtype `json:"dtype"`
	Shape []int64           `json:"shape"`
	Size  int64             `json:"size"`
}

func encodeIndex(d *safetensors.Dir, dir string) ([]byte, error) {
	var idx streamIndex
	for _, t := range d.Tensors() {
		idx.Tensors = append(idx.Tensors, streamTensor{Name: t.Name, Dtype: t.Dtype, Shape: t.Shape, Size: t.Size()})
	}
	slices.SortFunc(idx.Tensors, func(a, b streamTensor) int { return strings.Compare(a.Name, b.Name) })
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("loader: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || strings.HasSuffix(name, ".safetensors") || strings.HasPrefix(name, ".") ||
				name == "model.safetensors.index.json" || name == ShardStampName {
				continue
			}
			info, err := e.Info()
			if err != nil || info.Size() > maxStreamedFile {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("loader: %w", err)
			}
			if idx.Files == nil {
				idx.Files = map[string][]byte{}
			}
			idx.Files[name] = b
		}
	}
	return json.Marshal(&idx)
}

func decodeIndex(b []byte) (*streamIndex, []safetensors.TensorInfo, error) {
	var idx streamIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, nil, fmt.Errorf("loader: the streamed tensor index: %w", err)
	}
	tensors := make([]safetensors.TensorInfo, len(idx.Tensors))
	var off int64
	for i, t := range idx.Tensors {
		tensors[i] = safetensors.TensorInfo{Name: t.Name, Dtype: t.Dtype, Shape: t.Shape, Begin: off, End: off + t.Size, Offset: off}
		off += t.Size
	}
	return &idx, tensors, nil
}

// Roles travel as one all-gathered int32 vector per rank.
const (
	roleReceiver = 0
	roleSource   = 1
	roleFailed   = 2
	roleWords    = 1 + 2 + 8 // role, index length, index digest
)

// OpenStream opens rank g.Rank()'s load of the checkpoint at path for a
// job where not every rank has it: ranks where path exists are sources,
// the others receive their shard from them over g. Every rank of g must
// call it with the same options (the rank and world size come from g).
//
// Sources read each receiver's part of every tensor with the byte ranges
// the Direct strategy uses for that rank, and send it with a CRC-32C of
// its bytes; a receiver's arrays are MLX's receive buffers (nothing is
// staged or written to disk unless Cache asks), checked against the
// checksums, section by section under its memory guard. A source's Layers
// sends its receivers' parts of each section, a window of them in flight
// while it reads the next, and loads its own part meanwhile; a receiver's
// Layers yields what it received. Both must run Layers once, to the end.
//
// A peer that dies or stops answering ends Layers with a *StreamError
// naming the peer and the section (or, when MLX is stuck inside the
// transfer, the group's OnHang after its timeout).
//
// When every rank holds the checkpoint the load is an ordinary one. The
// returned loader's Stream reports the plan and StreamStats the figures.
func OpenStream(ctx context.Context, g *jaccl.Group, path string, o StreamOptions) (*ShardLoader, error) {
	o.Rank, o.WorldSize = g.Rank(), g.Size()
	if o.Strategy != Direct {
		return nil, fmt.Errorf("loader: streaming needs the direct strategy, not %s", o.Strategy)
	}
	var (
		d      *safetensors.Dir
		idx    []byte
		ownErr error
	)
	if _, err := os.Stat(path); err == nil {
		if st, err := ReadShardStamp(path); err != nil {
			ownErr = err
		} else if st != nil {
			ownErr = fmt.Errorf("loader: %s holds rank %d of %d's shard only and cannot be streamed from; give this rank the whole checkpoint or no checkpoint", path, st.Rank, st.WorldSize)
		} else if d, ownErr = safetensors.OpenDir(path); ownErr == nil {
			idx, ownErr = encodeIndex(d, path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		ownErr = fmt.Errorf("loader: %w", err)
	}
	closeDir := func() {
		if d != nil {
			d.Close()
		}
	}

	mine := make([]int32, roleWords)
	switch {
	case ownErr != nil:
		mine[0] = roleFailed
	case d != nil:
		mine[0] = roleSource
		mine[1], mine[2] = int32(uint32(len(idx))), int32(uint32(uint64(len(idx))>>32))
		sum := sha256.Sum256(idx)
		for i := range 8 {
			mine[3+i] = int32(binary.LittleEndian.Uint32(sum[4*i:]))
		}
	}
	all, err := jaccl.AllGatherSlice(ctx, g, mine)
	if err != nil {
		closeDir()
		return nil, errors.Join(err, ownErr)
	}
	if ownErr != nil {
		closeDir()
		return nil, ownErr
	}
	n := g.Size()
	row := func(r int) []int32 { return all[r*roleWords : (r+1)*roleWords] }
	var sources []int
	for r := range n {
		switch row(r)[0] {
		case roleFailed:
			closeDir()
			return nil, fmt.Errorf("loader: rank %d could not open its checkpoint (see its output); no rank loads", r)
		case roleSource:
			sources = append(sources, r)
		}
	}
	if len(sources) == 0 {
		return nil, fmt.Errorf("loader: no rank of %d has the checkpoint at %s: put it on at least one node", n, path)
	}
	for _, s := range sources[1:] {
		if !slices.Equal(row(s)[1:], row(sources[0])[1:]) {
			closeDir()
			return nil, fmt.Errorf("loader: ranks %d and %d hold different checkpoints at %s: give every source the same files", sources[0], s, path)
		}
	}
	if len(sources) == n {
		defer closeDir()
		l, err := Open(path, o.Options)
		if err != nil {
			return nil, err
		}
		return l, nil
	}

	me := g.Rank()
	neighbours := NeighboursOnly(g.Backend())
	reach := func(s, r int) bool { return !neighbours || (s+1)%n == r || (r+1)%n == s }
	// A receiver takes the index from the lowest source that can reach it.
	indexSource := func(r int) int {
		for _, s := range sources {
			if reach(s, r) {
				return s
			}
		}
		return -1
	}
	var tensors []safetensors.TensorInfo
	var index *streamIndex
	if d != nil {
		tensors = d.Tensors()
		for r := range n {
			if row(r)[0] != roleSource && indexSource(r) == me {
				if err := sendBytes(ctx, g, idx, r); err != nil {
					closeDir()
					return nil, &StreamError{Section: "index", Peer: r, Op: "sending to", Err: err}
				}
			}
		}
	} else if src := indexSource(me); src >= 0 {
		size := int(uint64(uint32(row(src)[1])) | uint64(uint32(row(src)[2]))<<32)
		b, err := recvBytes(ctx, g, size, src)
		if err != nil {
			return nil, &StreamError{Section: "index", Peer: src, Op: "receiving from", Err: err}
		}
		sum := sha256.Sum256(b)
		for i := range 8 {
			if int32(binary.LittleEndian.Uint32(sum[4*i:])) != row(src)[3+i] {
				return nil, &StreamError{Section: "index", Peer: src, Op: "receiving from", Err: ErrChecksum}
			}
		}
		if index, tensors, err = decodeIndex(b); err != nil {
			return nil, err
		}
	}
	plan, err := NewPlan(tensors, o.PlanOptions)
	if err != nil {
		closeDir()
		return nil, err
	}
	sp, err := NewStreamPlan(plan, sources, neighbours, o.Window)
	if err != nil {
		closeDir()
		return nil, err
	}
	st := &streamer{g: g, plan: sp, rank: me, window: sp.Window}
	if d != nil && sp.Reads(me) > 0 && g.Stream() != nil {
		if dev, err := g.Stream().Device(); err == nil && dev == mlx.CPU {
			// Best effort: without streams of their own the sends share
			// the default CPU stream and overlap less with the reads and
			// with each other.
			st.sendStreams = map[int]*mlx.Stream{}
			for _, ln := range sp.Links {
				if ln.Source == me {
					if ss, err := mlx.NewStream(mlx.CPU); err == nil {
						st.sendStreams[ln.Receiver] = ss
					}
				}
			}
		}
	}
	if d != nil && sp.Reads(me) > 0 {
		for i := range plan.Sections {
			plan.Sections[i].Peak += sp.SourceExtra
		}
		plan.Peak += sp.SourceExtra
	}
	if d == nil {
		// A receiver reads no file: its bytes come over the link.
		for i := range plan.Sections {
			plan.Sections[i].Read, plan.Sections[i].Disk = 0, 0
		}
		plan.Read, plan.Disk = 0, 0
	}
	plan.Stream = sp
	l, err := newLoader(d, plan, o.Options)
	if err != nil {
		st.freeStreams()
		closeDir()
		return nil, err
	}
	l.ownDir = d != nil
	l.stream = st
	if d == nil {
		st.receiving = true
		if o.Cache != "" {
			if st.cache, err = newStreamCache(o.Cache, plan, index); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

func sendBytes(ctx context.Context, g *jaccl.Group, b []byte, dst int) error {
	return mlx.Do(func() error {
		a, err := mlx.NewArrayBytes(b, []int{len(b)}, mlx.Uint8)
		if err != nil {
			return err
		}
		defer a.Free()
		s, err := g.Send(a, dst)
		if err != nil {
			return err
		}
		defer s.Free()
		ctx, cancel := transferCtx(ctx, g, "index", dst, "sending to")
		defer cancel()
		return g.Eval(ctx, s)
	})
}

func recvBytes(ctx context.Context, g *jaccl.Group, size, src int) ([]byte, error) {
	var out []byte
	err := mlx.Do(func() error {
		a, err := g.Recv([]int{size}, mlx.Uint8, src)
		if err != nil {
			return err
		}
		defer a.Free()
		ctx, cancel := transferCtx(ctx, g, "index", src, "receiving from")
		defer cancel()
		if err := g.Eval(ctx, a); err != nil {
			return err
		}
		out, err = a.Bytes()
		return err
	})
	return out, err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// transferCtx bounds one transfer a little inside the group's own timeout:
// a peer that stalls then ends the load with the section and the rank
// named (the group hands the cause to its OnHang) rather than with the
// group's message alone.
func transferCtx(ctx context.Context, g *jaccl.Group, section string, peer int, op string) (context.Context, context.CancelFunc) {
	t := g.Timeout()
	if t <= 0 {
		return ctx, func() {}
	}
	t -= min(time.Second, t/10)
	return context.WithTimeoutCause(ctx, t, &StreamError{Section: section, Peer: peer, Op: op,
		Err: fmt.Errorf("%w: nothing came through for %s (a hung peer or a stalled link)", ErrStalled, t)})
}

// maxPartsInFlight bounds the sends a source has started and not seen
// finish. MLX makes an asynchronous evaluation wait, outside any watchdog,
// while more than ten tasks are active; below that, a receiver that dies
// cannot leave the source stuck where the group's timeout does not reach.
const maxPartsInFlight = 8

// streamer is a streamed load's state on one rank.
type streamer struct {
	g         *jaccl.Group
	plan      *StreamPlan
	rank      int
	receiving bool
	window    int64
	cache     *streamCache

	// A source's parts in flight, oldest first: being read, or sent and
	// not yet seen delivered. inFlight is their bytes.
	flight   []*inFlight
	inFlight int64
	// sendStreams are CPU streams of the sends' own, one per receiver: on
	// the default stream every allocation of the next part (and of the
	// source's own arrays) would wait behind the sends queued before it,
	// and on one shared stream the sends to one receiver would wait
	// behind those to another, though each peer has its own sockets.
	sendStreams map[int]*mlx.Stream

	sent, received, flightPeak atomic.Int64
}

type inFlight struct {
	part, send *mlx.Array
	bytes      int64
	section    string
	peer       int
	// read delivers the result of the part's read; nil once received.
	read chan error
}

// Stream returns the streaming plan of a load OpenStream made, nil for an
// ordinary load.
func (l *ShardLoader) Stream() *StreamPlan {
	if l.stream == nil {
		return nil
	}
	return l.stream.plan
}

// StreamStats returns the streamed load's figures so far (zero for an
// ordinary load).
func (l *ShardLoader) StreamStats() StreamStats {
	if l.stream == nil {
		return StreamStats{}
	}
	s := l.stream
	return StreamStats{Sent: s.sent.Load(), Received: s.received.Load(), InFlightPeak: s.flightPeak.Load()}
}

// send sends the parts of section i, of which sp is this rank's plan, to
// every receiver this source serves it to. Up to Workers parts are read at
// once; their sends are queued in plan order as their reads finish.
func (s *streamer) send(ctx context.Context, l *ShardLoader, i int, sp *SectionPlan) error {
	if s.receiving {
		return nil
	}
	n := l.plan.WorldSize
	readers := make(chan struct{}, l.opts.Workers)
	for r := range n {
		if s.plan.Source(i, r) != s.rank {
			continue
		}
		sums := make([]uint32, len(sp.Tensors))
		for j := range sp.Tensors {
			tp := &sp.Tensors[j]
			if tp.ShardBytes == 0 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return context.Cause(ctx)
			}
			_, f, ok := l.dir.Tensor(tp.Name)
			if !ok {
				return &LoadError{Section: sp.Name, Tensor: tp.Name, Err: errors.New("not in the checkpoint")}
			}
			dt, err := mlxDtype(tp.Dtype)
			if err != nil {
				return &LoadError{Section: sp.Name, Tensor: tp.Name, Err: err}
			}
			if err := s.makeRoom(ctx, tp.ShardBytes); err != nil {
				return err
			}
			e := &inFlight{bytes: tp.ShardBytes, section: sp.Name, peer: r, read: make(chan error, 1)}
			s.add(e)
			readers <- struct{}{}
			go func() {
				defer func() { <-readers }()
				var err error
				e.part, err = mlx.NewArrayFill(intShape(tp.ShardShape), dt, func(dst []byte) error {
					if _, err := fill(f, tp, n, r, l.opts.Read, dst); err != nil {
						return &LoadError{Section: sp.Name, Tensor: tp.Name, File: tp.File, Err: err}
					}
					sums[j] = crc32.Checksum(dst, castagnoli)
					if h := testHookPartRead; h != nil {
						h(tp.Name, r, dst)
					}
					return nil
				})
				e.read <- err
			}()
			if err := s.queueRead(false); err != nil {
				return err
			}
		}
		// The checksums go once every part's read is done (and sums
		// complete), after the parts.
		if err := s.queueRead(true); err != nil {
			return err
		}
		a, err := mlx.FromSlice(sums)
		if err != nil {
			return err
		}
		e := &inFlight{part: a, section: sp.Name, peer: r}
		s.add(e)
		if err := s.queue(e); err != nil {
			return err
		}
	}
	return nil
}

// testHookPartRead, set only by tests, sees each part a source has read and
// checksummed before it is sent, where a test changes its bytes as a faulty
// link or memory would.
var testHookPartRead func(tensor string, receiver int, part []byte)

// add puts e at the end of the window.
func (s *streamer) add(e *inFlight) {
	s.flight = append(s.flight, e)
	s.inFlight += e.bytes
	if s.inFlight > s.flightPeak.Load() {
		s.flightPeak.Store(s.inFlight)
	}
}

// queueRead queues, in order, the sends of the parts whose reads are done,
// stopping at the first still being read; with wait it waits for them all.
func (s *streamer) queueRead(wait bool) error {
	for _, e := range s.flight {
		if e.send != nil {
			continue
		}
		if e.read != nil {
			if !wait {
				select {
				case err := <-e.read:
					e.read = nil
					if err != nil {
						return err
					}
				default:
					return nil
				}
			} else {
				err := <-e.read
				e.read = nil
				if err != nil {
					return err
				}
			}
		}
		if err := s.queue(e); err != nil {
			return err
		}
	}
	return nil
}

// queue starts the send of e's part to its peer.
func (s *streamer) queue(e *inFlight) error {
	var err error
	if ss := s.sendStreams[e.peer]; ss != nil {
		if e.send, err = mlx.Send(e.part, e.peer, s.g.MLX(), ss); err != nil {
			err = cluster.Explain(err)
		}
	} else {
		e.send, err = s.g.Send(e.part, e.peer)
	}
	if err == nil {
		err = mlx.AsyncEval(e.send)
	}
	if err != nil {
		return &StreamError{Section: e.section, Peer: e.peer, Op: "sending to", Err: err}
	}
	return nil
}

// makeRoom waits for the oldest sends until bytes more fit in the window,
// or nothing is in flight.
func (s *streamer) makeRoom(ctx context.Context, bytes int64) error {
	for len(s.flight) > 0 && (s.inFlight+bytes > s.window || len(s.flight) >= maxPartsInFlight) {
		if err := s.waitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// waitOldest waits until the oldest part in flight is delivered, queueing
// its send first if its read had not finished, and frees it.
func (s *streamer) waitOldest(ctx context.Context) error {
	if err := s.queueRead(false); err != nil {
		return err
	}
	if f := s.flight[0]; f.send == nil {
		if err := s.queueRead(true); err != nil {
			return err
		}
	}
	f := s.flight[0]
	s.flight = s.flight[1:]
	s.inFlight -= f.bytes
	defer f.part.Free()
	defer f.send.Free()
	ctx, cancel := transferCtx(ctx, s.g, f.section, f.peer, "sending to")
	defer cancel()
	if err := s.g.Eval(ctx, f.send); err != nil {
		return &StreamError{Section: f.section, Peer: f.peer, Op: "sending to", Err: err}
	}
	s.sent.Add(f.bytes)
	return nil
}

// drain waits until every part sent has been delivered.
func (s *streamer) drain(ctx context.Context) error {
	for len(s.flight) > 0 {
		if err := s.waitOldest(ctx); err != nil {
			return err
		}
	}
	return nil
}

// abandon frees what is in flight without waiting: MLX keeps the arrays a
// queued send still needs.
func (s *streamer) abandon() {
	for _, f := range s.flight {
		if f.read != nil {
			<-f.read // a read under way ends on its own
		}
		f.part.Free()
		f.send.Free()
	}
	s.flight, s.inFlight = nil, 0
	s.freeStreams()
	if s.cache != nil {
		s.cache.abort()
		s.cache = nil
	}
}

func (s *streamer) freeStreams() {
	for _, ss := range s.sendStreams {
		ss.Free()
	}
	s.sendStreams = nil
}

// receive fills layer with section i of this rank's shard, received from
// its source, and checks every part against the source's checksum.
//
// Each receive is queued on its own, in plan order, the order the source
// sends in (MLX does not keep the order of independent arrays evaluated
// together), and waited for under the group's watchdog. While the stream
// thread receives part j, the MLX thread checksums part j-1 (and writes it
// to the cache): the checksums cost the link nothing. At most one receive
// is queued ahead. With more, a source that dies leaves the later ones
// queued for ever (MLX's ring back-end never completes a transfer started
// after it noticed the lost peer), and MLX's ClearCache, which waits for
// every CPU stream, would then hang the receiver's clean-up instead of
// letting it report the failure (tried: TestAFailedSourceEndsItsReceivers
// and TestAReceiverThatDiesOrStalls fail with four queued ahead).
func (s *streamer) receive(ctx context.Context, i int, sp *SectionPlan, layer *Layer) (err error) {
	src := s.plan.Source(i, s.rank)
	fail := func(err error) error {
		return &StreamError{Section: sp.Name, Peer: src, Op: "receiving from", Err: err}
	}
	// The receives write into memory faulted in ahead, on every core, not
	// into fresh pages faulted (and zeroed) 4 KiB at a time by the thread
	// that reads the socket: measured on 16 cores, a 2-rank streamed load
	// of 4.36 GB took 1.68-1.78 s against 2.39-2.43 s without. Restoring
	// the cache limit waits for the CPU streams, which is safe here: the
	// one receive ever queued has finished or failed (a peer that hangs
	// ends the process instead, see jaccl.Group.Watch).
	sizes := make([]int64, len(sp.Tensors))
	for j := range sp.Tensors {
		sizes[j] = sp.Tensors[j].ShardBytes
	}
	restore, err := mlx.PrefaultCache(sizes)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if rerr := restore(); err == nil && rerr != nil {
			err = fail(rerr)
		}
	}()
	got := make([]uint32, len(sp.Tensors))
	check := func(j int) error {
		tp := &sp.Tensors[j]
		if tp.ShardBytes == 0 {
			if s.cache != nil {
				return s.cache.write(tp.Name, nil)
			}
			return nil
		}
		var werr error
		err := layer.Arrays[tp.Name].ReadData(func(b []byte) error {
			got[j] = crc32.Checksum(b, castagnoli)
			if s.cache != nil {
				werr = s.cache.write(tp.Name, b)
			}
			return nil
		})
		if err != nil {
			return fail(err)
		}
		return werr
	}
	// queued checks the parts before end not yet checked, in order, while
	// a, queued, is received, then waits for a; a failed check still
	// waits, so that no receive is left queued.
	next := 0
	queued := func(a *mlx.Array, end int) error {
		var cerr error
		for ; next < end && cerr == nil; next++ {
			cerr = check(next)
		}
		if err := s.evalRecv(ctx, a, sp.Name, src); err != nil {
			return fail(err)
		}
		return cerr
	}
	var bytes int64
	for j := range sp.Tensors {
		tp := &sp.Tensors[j]
		dt, err := mlxDtype(tp.Dtype)
		if err != nil {
			return &LoadError{Section: sp.Name, Tensor: tp.Name, Err: err}
		}
		var a *mlx.Array
		if tp.ShardBytes == 0 {
			a, err = mlx.NewArrayFill(intShape(tp.ShardShape), dt, func([]byte) error { return nil })
		} else if a, err = s.g.Recv(intShape(tp.ShardShape), dt, src); err == nil {
			err = mlx.AsyncEval(a)
		}
		if err != nil {
			a.Free()
			return fail(err)
		}
		// In layer from here: Layer.Free frees it, also after a failure.
		layer.Arrays[tp.Name] = a
		if tp.ShardBytes > 0 {
			if err := queued(a, j); err != nil {
				return err
			}
		}
		bytes += tp.ShardBytes
	}
	sumsArr, err := s.g.Recv([]int{len(sp.Tensors)}, mlx.Uint32, src)
	if err == nil {
		err = mlx.AsyncEval(sumsArr)
	}
	defer sumsArr.Free()
	if err != nil {
		return fail(err)
	}
	if err := queued(sumsArr, len(sp.Tensors)); err != nil {
		return err
	}
	sums, err := mlx.ToSlice[uint32](sumsArr)
	if err != nil {
		return fail(err)
	}
	for j := range sp.Tensors {
		tp := &sp.Tensors[j]
		if tp.ShardBytes > 0 && got[j] != sums[j] {
			return fail(fmt.Errorf("%w: tensor %q: CRC-32C %08x, source sent %08x", ErrChecksum, tp.Name, got[j], sums[j]))
		}
	}
	s.received.Add(bytes)
	return nil
}

func (s *streamer) evalRecv(ctx context.Context, a *mlx.Array, section string, src int) error {
	ctx, cancel := transferCtx(ctx, s.g, section, src, "receiving from")
	defer cancel()
	return s.g.Eval(ctx, a)
}

// finish completes the stream after the last section: a source waits for
// its last sends, a receiver's cache is committed.
func (s *streamer) finish(ctx context.Context) error {
	if err := s.drain(ctx); err != nil {
		return err
	}
	if s.cache != nil {
		c := s.cache
		s.cache = nil
		return c.commit()
	}
	return nil
}

// streamCache writes a receiver's shard as Reshard lays one out: one
// safetensors file (tagged, as Reshard's are, with the rank), the index,
// the other files, the stamp last; all under a temporary directory that
// replaces the target only once complete, so a load that fails leaves no
// half cache behind.
type streamCache struct {
	dir   *atomicfile.Dir
	w     *safetensors.Writer
	stamp ShardStamp
}

func newStreamCache(dir string, plan *Plan, index *streamIndex) (*streamCache, error) {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o755); err != nil {
		return nil, fmt.Errorf("loader: cache: %w", err)
	}
	out, err := atomicfile.CreateDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loader: cache: %w", err)
	}
	c := &streamCache{dir: out, stamp: ShardStamp{Rank: plan.Rank, WorldSize: plan.WorldSize, Rules: plan.Rules, Source: "streamed"}}
	fail := func(err error) (*streamCache, error) {
		out.Abort()
		return nil, fmt.Errorf("loader: cache %s: %w", dir, err)
	}
	var specs []safetensors.TensorSpec
	weightMap := map[string]string{}
	const file = "model.safetensors"
	for _, sec := range plan.Sections {
		for _, tp := range sec.Tensors {
			specs = append(specs, safetensors.TensorSpec{Name: tp.Name, Dtype: tp.Dtype, Shape: tp.ShardShape})
			weightMap[tp.Name] = file
			c.stamp.Tensors++
			c.stamp.Bytes += tp.ShardBytes
		}
	}
	if index != nil {
		for name, b := range index.Files {
			if err := os.WriteFile(filepath.Join(out.Path(), filepath.Base(name)), b, 0o644); err != nil {
				return fail(err)
			}
		}
	}
	idx := map[string]any{"metadata": map[string]any{"total_size": c.stamp.Bytes}, "weight_map": weightMap}
	if err := writeJSON(filepath.Join(out.Path(), "model.safetensors.index.json"), idx); err != nil {
		return fail(err)
	}
	meta := map[string]string{"format": "mlx", shardMetaKey: strconv.Itoa(plan.Rank) + "/" + strconv.Itoa(plan.WorldSize)}
	if c.w, err = safetensors.Create(filepath.Join(out.Path(), file), specs, meta); err != nil {
		return fail(err)
	}
	return c, nil
}

func (c *streamCache) write(name string, b []byte) error {
	if err := c.w.WriteTensor(name, b); err != nil {
		return fmt.Errorf("loader: cache %s: %w", c.dir.Target(), err)
	}
	return nil
}

// commit closes the file, writes the stamp, and puts the directory in
// place of any earlier one.
func (c *streamCache) commit() error {
	err := c.w.Close()
	if err == nil {
		err = writeJSON(filepath.Join(c.dir.Path(), ShardStampName), &c.stamp)
	}
	if err == nil {
		err = c.dir.Commit()
	}
	if err != nil {
		c.dir.Abort()
		return fmt.Errorf("loader: cache %s: %w", c.dir.Target(), err)
	}
	return nil
}

func (c *streamCache) abort() {
	c.w.Abort()
	c.dir.Abort()
}

// streamSection loads section i of a streamed load: a source sends its
// receivers' parts of it while it loads its own; a receiver receives its
// own. After the last section the stream is finished before the section is
// yielded, so that a failure of the last transfer still ends the load.
func (l *ShardLoader) streamSection(ctx context.Context, r *run, i int, sp *SectionPlan) (*Layer, error) {
	s := l.stream
	var layer *Layer
	if s.receiving {
		layer = &Layer{Section: sp.Section, Arrays: make(map[string]*mlx.Array, len(sp.Tensors))}
		if err := s.receive(ctx, i, sp, layer); err != nil {
			layer.Free()
			_ = mlx.ClearCache()
			return nil, err
		}
	} else {
		// The source reads its own part of the section while it reads and
		// sends its receivers' parts: one disk, both kept busy.
		var ownErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			layer, ownErr = r.section(ctx, sp)
		}()
		err := s.send(ctx, l, i, sp)
		<-done
		if err == nil {
			err = ownErr
		}
		if err != nil {
			if layer != nil {
				layer.Free()
			}
			return nil, err
		}
	}
	if i == len(l.plan.Sections)-1 {
		if err := s.finish(ctx); err != nil {
			layer.Free()
			return nil, err
		}
	}
	return layer, nil
}
