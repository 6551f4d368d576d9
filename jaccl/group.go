package jaccl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mlxdist/mlxdist/internal/oneline"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mlxdist/mlxdist/mlx"
)

// More failures a Group reports as the Kind of a *BackendError, next to the
// ones cluster.Explain recognises.
var (
	ErrBackendMismatch    = errors.New("the launcher set up a different back-end than the one requested")
	ErrBackendUnavailable = errors.New("this MLX build does not have the requested back-end")
	ErrWorldSize          = errors.New("the group's size differs from the number of ranks the launcher set up")
	ErrSplitUnsupported   = errors.New("the back-end cannot split a group (only mpi and nccl can)")
	ErrCollectiveTimeout  = errors.New("a collective did not finish in time: a peer is hung or its host unreachable")
)

// ErrClosed is returned by every method of a Group after Close.
var ErrClosed = errors.New("jaccl: use of a closed group")

// DefaultTimeout bounds the evaluating helpers of a Group (Eval, Barrier,
// AllSumSlice, ...) and the work Watch guards when Options.Timeout is zero.
// MLX usually notices a peer that exits within milliseconds and fails the
// collective in flight; the deadline is for a peer that stops answering
// without closing its sockets (a frozen or powered-off host), which TCP
// alone would wait on forever, and for a collective MLX's ring back-end
// starts after it noticed a lost peer, which it never completes.
const DefaultTimeout = 60 * time.Second

// Options tune Init.
type Options struct {
	// Backend is the back-end to join; "" and Any take the one the launcher
	// set up (see EnvBackend), or let MLX pick when there is none.
	Backend Backend
	// Strict makes init fail instead of returning a group of one when the
	// back-end cannot start. Init is strict anyway when a launcher set the
	// job up (EnvBackend is not empty), unless the launcher set up exactly
	// one rank (MLX_WORLD_SIZE=1), since a group of one is then the right
	// answer.
	Strict bool
	// Timeout bounds each evaluating helper; 0 means DefaultTimeout and a
	// negative value waits forever.
	Timeout time.Duration
	// InitTimeout bounds Init itself; 0 means $MLXDIST_INIT_TIMEOUT, else
	// cluster.DefaultInitTimeout, and a negative value waits forever. MLX cannot be
	// interrupted inside init, so on timeout Init hands an cluster.ErrInitTimeout
	// error, naming the peers this rank waited for, to OnHang, which by
	// default ends the process.
	InitTimeout time.Duration
	// OnHang is called, on another goroutine, when an Eval passes its
	// deadline or its context is done while MLX is still inside the
	// evaluation, and by Init when the group does not form within
	// InitTimeout. MLX cannot be interrupted, so the process can do nothing
	// more with MLX; nil prints the error to standard error and exits with
	// status 1, which lets the launcher stop the other ranks.
	OnHang func(error)
	// Logger receives a line when the group is up; nil is silent.
	Logger *slog.Logger
	// KeepSIGPIPE leaves the process's SIGPIPE handling as it is. By default
	// Init ignores SIGPIPE for the whole process, as Python does: MLX's
	// back-ends write to sockets from threads Go did not create, where a
	// write to a peer that has gone would otherwise raise SIGPIPE and end
	// the process before the lost peer can be reported as an error (writes
	// to a closed standard output then fail with EPIPE instead). Set it when
	// the program handles SIGPIPE itself.
	KeepSIGPIPE bool
}

// Group is this process's membership in a distributed MLX job: its rank, the
// number of ranks, and the collectives between them.
//
// The collectives (AllSum, AllGather, ...) are lazy like every MLX op: they
// return an unevaluated array, so a caller can fuse them into a larger graph.
// They always run on the stream the back-end needs (the CPU for ring, jaccl
// and mpi, the GPU for nccl). Eval and the slice helpers evaluate under a
// watchdog, so a hung peer ends the process with a clear error instead of
// a hang.
//
// A Group may be used from several goroutines; MLX runs one call at a time.
type Group struct {
	g       *mlx.Group
	backend Backend
	stream  *mlx.Stream
	timeout time.Duration
	onHang  func(error)

	closed atomic.Bool
	// broken holds the error that made the group unusable: after a timed
	// out collective MLX's thread is still inside it, and every later call
	// would queue behind it.
	broken atomic.Pointer[error]
}

// Init joins the distributed job this process was launched into.
//
// It fails with a *BackendError when the back-end asked for is not the one
// the launcher set up (ErrBackendMismatch), when this MLX build lacks it
// (ErrBackendUnavailable, cluster.ErrJACCLUnavailable), when MLX cannot start it
// (every message cluster.Explain knows comes back with its fix), and when the group
// is smaller than the number of ranks the launcher set up (cluster.ErrSizeOne,
// ErrWorldSize): a group of one would make every collective return its input
// and the job would silently compute the wrong thing.
//
// Back-ends block in init until every peer has joined. Cancelling ctx makes
// Init return, but MLX's thread stays in init, so the process should exit.
// A group that has not formed within the init timeout (Options.InitTimeout,
// cluster.InitTimeoutEnv, cluster.DefaultInitTimeout) is an cluster.ErrInitTimeout error naming the
// peers this rank waited for, handed to Options.OnHang, which by default
// ends the process with status 1 so that the launcher stops the job.
func Init(ctx context.Context, opt Options) (*Group, error) {
	requested := opt.Backend
	if requested == "" {
		requested = Any
	}
	if _, err := cluster.ParseBackend(string(requested)); err != nil {
		return nil, fmt.Errorf("jaccl: %w", err)
	}
	b, err := resolveInitBackend(requested, EnvBackend())
	if err != nil {
		return nil, err
	}
	if b == JACCLRing && os.Getenv("MLX_JACCL_RING") == "" && os.Getenv("JACCL_RING") == "" {
		// MLX reads the ring shape of jaccl from the environment only, so a
		// caller that asked for jaccl-ring by name (a launcher sets the
		// variable itself) has it set for this process.
		if err := os.Setenv("MLX_JACCL_RING", "1"); err != nil {
			return nil, fmt.Errorf("jaccl: %w", err)
		}
	}
	if b != Any {
		ok, err := mlx.DistributedAvailable(b.MLXName())
		if err != nil {
			return nil, err
		}
		if !ok {
			kind, fix := ErrBackendUnavailable, fmt.Sprintf("install an MLX build with %s, or launch with a back-end it has (mlx.distributed.is_available)", b.MLXName())
			if b.MLXName() == string(JACCL) {
				kind, fix = cluster.ErrJACCLUnavailable, "run on macOS 26.2 or later with a current MLX wheel; elsewhere ask for the ring back-end explicitly"
			}
			return nil, &BackendError{Backend: b, Kind: kind, Cause: fmt.Errorf("mlx.distributed.is_available(%q) is false", b.MLXName()), Fix: fix}
		}
	}

	want, source := LaunchedSize()
	strict := initStrict(opt.Strict, EnvBackend(), want)

	type result struct {
		g   *mlx.Group
		err error
	}
	initTimeout, err := initTimeout(opt.InitTimeout)
	if err != nil {
		return nil, err
	}
	onHang := opt.OnHang
	if onHang == nil {
		onHang = defaultOnHang
	}
	joined := os.Getenv(cluster.JoinedEnv)
	if joined != "" {
		// Best effort: a launcher that cannot see the mark only names fewer
		// ranks in its error.
		_ = os.WriteFile(joined+".init", nil, 0o666)
	}
	if !opt.KeepSIGPIPE {
		signal.Ignore(syscall.SIGPIPE)
	}
	done := make(chan result, 1)
	go func() {
		g, err := mlx.DistributedInit(strict, b.MLXName())
		done <- result{g, err}
	}()
	var expired <-chan time.Time
	if initTimeout > 0 && want != 1 {
		t := time.NewTimer(initTimeout)
		defer t.Stop()
		expired = t.C
	}
	abandon := func() {
		go func() {
			if r := <-done; r.g != nil {
				r.g.Free()
			}
		}()
	}
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		abandon()
		return nil, fmt.Errorf("jaccl: initialising %s: %w", b, context.Cause(ctx))
	case <-expired:
		abandon()
		err := &BackendError{Backend: b, Kind: cluster.ErrInitTimeout,
			Cause: fmt.Errorf("rank %s of %d: no group within %v; waiting for %s", envOr("MLX_RANK", "?"), want, initTimeout, awaitedPeers(b)),
			Fix:   "look at the output and hosts of the ranks named: one that was stopped, crashed before init or cannot reach this host keeps the group from forming; for slow starts raise " + cluster.InitTimeoutEnv + " (launch --init-timeout)"}
		onHang(err)
		return nil, err
	}
	if res.err == nil && joined != "" {
		_ = os.WriteFile(joined, nil, 0o666)
	}
	if res.err != nil {
		return nil, cluster.Explain(fmt.Errorf("jaccl: initialising %s: %w", b, res.err))
	}
	size := res.g.Size()
	if want > 1 && size != want {
		res.g.Free()
		cause := fmt.Errorf("%s says %d ranks but init returned a group of %d", source, want, size)
		if size == 1 {
			return nil, &BackendError{Backend: b, Kind: cluster.ErrSizeOne, Cause: cause,
				Fix: fmt.Sprintf("initialise strictly so the real failure shows (backend %q, strict), and check that every rank was started by the same launcher", b.MLXName())}
		}
		return nil, &BackendError{Backend: b, Kind: ErrWorldSize, Cause: cause,
			Fix: "start every rank with one launcher and one hostfile; a stale MLX_* variable in the shell can also cause this"}
	}

	g := &Group{g: res.g, backend: b, stream: mlx.CPUStream(), timeout: opt.Timeout, onHang: onHang}
	if b == NCCL {
		g.stream = mlx.GPUStream()
	}
	if g.timeout == 0 {
		g.timeout = DefaultTimeout
	}
	if opt.Logger != nil {
		opt.Logger.Info("distributed group ready", "backend", string(b), "rank", g.Rank(), "size", size, "strict", strict)
	}
	return g, nil
}

// initTimeout resolves Options.InitTimeout against cluster.InitTimeoutEnv.
// initStrict decides whether init may return a group of one: not when the
// caller asked, nor when a launcher set the job up (launched is not empty),
// where a group of one would run the whole job on every rank without a
// word; always when the launcher set up exactly one rank (size 1).
func initStrict(asked bool, launched Backend, size int) bool {
	return (asked || launched != "") && size != 1
}

func initTimeout(opt time.Duration) (time.Duration, error) {
	if opt != 0 {
		return opt, nil
	}
	v := os.Getenv(cluster.InitTimeoutEnv)
	if v == "" {
		return cluster.DefaultInitTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d == 0 {
		return 0, fmt.Errorf("jaccl: %s=%q is not a duration such as 30s (negative waits for ever)", cluster.InitTimeoutEnv, v)
	}
	return d, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// awaitedPeers names the ranks this one waits for in init, with their
// addresses where the launcher's files say them: every other rank of a ring
// hostfile, the coordinator of jaccl.
func awaitedPeers(b Backend) string {
	rank, _ := strconv.Atoi(os.Getenv("MLX_RANK"))
	switch b {
	case JACCL, JACCLRing:
		if c := firstEnv("MLX_JACCL_COORDINATOR", "JACCL_COORDINATOR"); c != "" {
			return "the other ranks, through rank 0's coordinator " + c
		}
	case Ring:
		data, err := os.ReadFile(os.Getenv("MLX_HOSTFILE"))
		var list [][]string
		if err == nil && json.Unmarshal(data, &list) == nil {
			var peers []string
			for r, addrs := range list {
				if r != rank && len(addrs) > 0 {
					peers = append(peers, fmt.Sprintf("rank %d (%s)", r, addrs[0]))
				}
			}
			return oneline.List(peers, 4)
		}
	}
	return "the other ranks"
}

// resolveInitBackend picks the back-end to initialise: the one asked for, or
// with Any the one the launcher set up. Asking for one back-end in a job the
// launcher set up for another is an error rather than a silent switch.
func resolveInitBackend(requested, launched Backend) (Backend, error) {
	if requested == Any {
		if launched != "" {
			return launched, nil
		}
		return Any, nil
	}
	if launched == "" || launched.MLXName() == requested.MLXName() {
		if requested == JACCL && launched == JACCLRing {
			return JACCLRing, nil
		}
		return requested, nil
	}
	return "", &BackendError{
		Backend: requested,
		Kind:    ErrBackendMismatch,
		Cause:   fmt.Errorf("asked for %s but the environment is set up for %s", requested, launched),
		Fix:     fmt.Sprintf("launch with --backend %s (or the hostfile's \"backend\"), or ask for %s", requested, launched),
	}
}

// EnvBackend reports which back-end a launcher set up in this process's
// environment: jaccl when MLX_IBV_DEVICES (or JACCL_IBV_DEVICES) is set,
// jaccl-ring when MLX_JACCL_RING is also set, ring for MLX_HOSTFILE, nccl
// for NCCL_HOST_IP, mpi when mpirun's rank variables are present, ring for
// a one-rank job (MLX_WORLD_SIZE=1, MLX_RANK=0, nothing else); "" when none
// is. When several are set, MLX's own order for "any" decides (nccl,
// ring, mpi, jaccl).
func EnvBackend() Backend {
	switch {
	case os.Getenv("NCCL_HOST_IP") != "":
		return NCCL
	case os.Getenv("MLX_HOSTFILE") != "":
		return Ring
	case os.Getenv("OMPI_COMM_WORLD_SIZE") != "" || os.Getenv("PMI_SIZE") != "":
		return MPI
	case os.Getenv("MLX_IBV_DEVICES") != "" || os.Getenv("JACCL_IBV_DEVICES") != "":
		if v := firstEnv("JACCL_RING", "MLX_JACCL_RING"); v != "" && v != "0" {
			return JACCLRing
		}
		return JACCL
	case os.Getenv("MLX_WORLD_SIZE") == "1" && os.Getenv("MLX_RANK") == "0":
		// A launcher's one-rank ring job: it gets no MLX_HOSTFILE (MLX's
		// ring blocks on a one-entry list), and every other back-end
		// leaves a mark of its own.
		return Ring
	}
	return ""
}

// LaunchedSize reports how many ranks the launcher set up and where that
// figure comes from: MLX_WORLD_SIZE, else the number of entries in the ring
// hostfile (MLX_HOSTFILE) or rows of the RDMA matrix (MLX_IBV_DEVICES), else
// mpirun's size variables. It returns 0 when nothing says.
func LaunchedSize() (n int, source string) {
	for _, name := range []string{"MLX_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"} {
		if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
			return v, name
		}
	}
	for _, name := range []string{"MLX_HOSTFILE", "JACCL_IBV_DEVICES", "MLX_IBV_DEVICES"} {
		path := os.Getenv(name)
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var list []json.RawMessage
		if json.Unmarshal(data, &list) == nil && len(list) > 0 {
			return len(list), name
		}
	}
	return 0, ""
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// Rank is this process's rank, from 0 to Size()-1.
func (g *Group) Rank() int { return g.g.Rank() }

// Size is the number of ranks in the group.
func (g *Group) Size() int { return g.g.Size() }

// Backend is the back-end the group runs on; Any only for a group of one
// that no launcher set up.
func (g *Group) Backend() Backend { return g.backend }

// Stream is the stream the group's collectives run on.
func (g *Group) Stream() *mlx.Stream { return g.stream }

// MLX returns the underlying group for calls this package does not wrap. It
// stays owned by g.
func (g *Group) MLX() *mlx.Group { return g.g }

// Close releases the group. Arrays the collectives returned stay valid.
func (g *Group) Close() error {
	if g.closed.Swap(true) {
		return nil
	}
	g.g.Free()
	return nil
}

func (g *Group) usable() error {
	if g.closed.Load() {
		return ErrClosed
	}
	if p := g.broken.Load(); p != nil {
		return *p
	}
	return nil
}

// Split divides the group into groups of the ranks that pass the same color;
// key orders the ranks of the new group (-1 keeps their order). Only mpi and
// nccl can split: on other back-ends Split fails before asking MLX.
func (g *Group) Split(color, key int) (*Group, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if g.backend != MPI && g.backend != NCCL {
		return nil, &BackendError{Backend: g.backend, Kind: ErrSplitUnsupported,
			Cause: fmt.Errorf("cannot split a %s group of %d ranks", g.backend, g.Size()),
			Fix:   "launch one job per sub-group, or use the mpi or nccl back-end"}
	}
	sub, err := g.g.Split(color, key)
	if err != nil {
		return nil, cluster.Explain(fmt.Errorf("jaccl: splitting the %s group: %w", g.backend, err))
	}
	return &Group{g: sub, backend: g.backend, stream: g.stream, timeout: g.timeout, onHang: g.onHang}, nil
}

// AllSum sums x over every rank. The result is lazy; see Eval.
func (g *Group) AllSum(x *mlx.Array) (*mlx.Array, error) {
	return g.collective("all_sum", mlx.AllSum, x)
}

// AllGather concatenates x from every rank, in rank order, along the first
// axis. The result is lazy.
func (g *Group) AllGather(x *mlx.Array) (*mlx.Array, error) {
	return g.collective("all_gather", mlx.AllGather, x)
}

// AllMax is the element-wise maximum of x over every rank. The result is
// lazy.
func (g *Group) AllMax(x *mlx.Array) (*mlx.Array, error) {
	return g.collective("all_max", mlx.AllMax, x)
}

// AllMin is the element-wise minimum of x over every rank. The result is
// lazy.
func (g *Group) AllMin(x *mlx.Array) (*mlx.Array, error) {
	return g.collective("all_min", mlx.AllMin, x)
}

// SumScatter sums x over every rank and returns this rank's slice of the
// first axis, which must divide by Size(). The result is lazy.
func (g *Group) SumScatter(x *mlx.Array) (*mlx.Array, error) {
	return g.collective("sum_scatter", mlx.SumScatter, x)
}

// Send sends x to rank dst when the returned array is evaluated. The ring
// back-end sends to its neighbours only (rank±1 modulo Size()).
func (g *Group) Send(x *mlx.Array, dst int) (*mlx.Array, error) {
	if err := g.checkPeer("send to", dst); err != nil {
		return nil, err
	}
	return g.collective("send", func(x *mlx.Array, mg *mlx.Group, s *mlx.Stream) (*mlx.Array, error) {
		return mlx.Send(x, dst, mg, s)
	}, x)
}

// Recv receives an array of the given shape and dtype from rank src when
// the returned array is evaluated.
func (g *Group) Recv(shape []int, dt mlx.Dtype, src int) (*mlx.Array, error) {
	if err := g.checkPeer("receive from", src); err != nil {
		return nil, err
	}
	out, err := mlx.Recv(shape, dt, src, g.g, g.stream)
	if err != nil {
		return nil, cluster.Explain(fmt.Errorf("jaccl: recv: %w", err))
	}
	return out, nil
}

func (g *Group) checkPeer(verb string, r int) error {
	if err := g.usable(); err != nil {
		return err
	}
	if r < 0 || r >= g.Size() || r == g.Rank() {
		return fmt.Errorf("jaccl: rank %d cannot %s rank %d in a group of %d", g.Rank(), verb, r, g.Size())
	}
	return nil
}

func (g *Group) collective(name string, op func(*mlx.Array, *mlx.Group, *mlx.Stream) (*mlx.Array, error), x *mlx.Array) (*mlx.Array, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	out, err := op(x, g.g, g.stream)
	if err != nil {
		return nil, cluster.Explain(fmt.Errorf("jaccl: %s: %w", name, err))
	}
	return out, nil
}

// Eval evaluates arrays, typically results of the group's collectives, on
// the calling goroutine. A failure of the back-end comes back explained (a
// lost peer is cluster.ErrPeerLost).
//
// MLX cannot interrupt a collective, so a deadline cannot make Eval return:
// when the group's timeout passes, or ctx is done, while MLX is still inside
// the evaluation, the group is marked unusable and Options.OnHang receives
// an ErrCollectiveTimeout (or the context's) error; by default it prints it
// and exits with status 1, which makes the launcher stop the other ranks.
// Should MLX return after all, Eval returns that error too.
func (g *Group) Eval(ctx context.Context, arrays ...*mlx.Array) error {
	finish, err := g.Watch(ctx)
	if err != nil {
		return err
	}
	return finish(mlx.Eval(arrays...))
}

// Watch guards MLX work that runs collectives on the group but is not one
// Eval call — a decoding step built and read in several calls — as Eval is
// guarded: when the group's timeout passes, or ctx is done, before the
// returned finish is called, the group is marked unusable and
// Options.OnHang receives the error. finish must be called once the work
// has returned, with the work's error; it returns the watchdog's error when
// the watchdog fired first, else the work's error explained as Eval's are.
// A lost peer (cluster.ErrPeerLost) marks the group unusable too, so that
// every later call fails at once with it. A group that is already unusable
// comes back as an error at once.
//
// MLX's ring back-end, once it has noticed a peer is gone, never completes a
// collective started after that: Watch and the broken mark are what turn
// such work into an error instead of a process that waits for ever.
func (g *Group) Watch(ctx context.Context) (finish func(error) error, err error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("jaccl: %w", context.Cause(ctx))
	}
	return g.watch(ctx), nil
}

// watch starts the watchdogs of one guarded call.
func (g *Group) watch(ctx context.Context) (finish func(error) error) {
	// Timers rather than a goroutine per call: the common case must cost
	// what mlx.Eval costs (see BenchmarkGroupEvalOverhead). The state decides
	// the race between a timer and the work finishing: whichever moves it
	// from running first wins, so a timer that fires just as the work
	// returns can neither break the group nor end the process.
	const (
		running = iota
		finished
		fired
	)
	var state atomic.Int32
	fire := func(err error) {
		if !state.CompareAndSwap(running, fired) {
			return
		}
		g.broken.CompareAndSwap(nil, &err)
		g.onHang(err)
	}
	var t *time.Timer
	if g.timeout > 0 {
		t = time.AfterFunc(g.timeout, func() {
			fire(&BackendError{Backend: g.backend, Kind: ErrCollectiveTimeout,
				Cause: fmt.Errorf("rank %d of %d: no answer within %v", g.Rank(), g.Size(), g.timeout),
				Fix:   "look at the other ranks' output and hosts for the one that stopped; this process cannot continue, since MLX is still waiting inside the collective"})
		})
	}
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			fire(fmt.Errorf("jaccl: rank %d of %d: collective abandoned while MLX is still inside it: %w", g.Rank(), g.Size(), context.Cause(ctx)))
		})
	}
	return func(workErr error) error {
		won := state.CompareAndSwap(running, finished)
		if won && testHookAfterEval != nil {
			testHookAfterEval()
		}
		if t != nil {
			t.Stop()
		}
		stop()
		if won {
			return g.explainEval(workErr)
		}
		// A timer won: it records why the group broke a moment after.
		for g.broken.Load() == nil {
			runtime.Gosched()
		}
		return *g.broken.Load()
	}
}

// testHookAfterEval runs after guarded work has returned and before its
// watchdogs are stopped, where a test widens the window a late timer can
// fire in.
var testHookAfterEval func()

func defaultOnHang(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// explainEval explains an evaluation's error; a lost peer also marks the
// group unusable, since MLX's ring back-end never completes a collective
// started after it noticed one.
func (g *Group) explainEval(err error) error {
	if err == nil {
		return nil
	}
	err = cluster.Explain(fmt.Errorf("jaccl: rank %d of %d: %w", g.Rank(), g.Size(), err))
	if errors.Is(err, cluster.ErrPeerLost) {
		g.broken.CompareAndSwap(nil, &err)
	}
	return err
}

// Barrier returns once every rank has reached it: it all-sums a one-element
// array and evaluates it.
func (g *Group) Barrier(ctx context.Context) error {
	one, err := mlx.FromSlice([]float32{1})
	if err != nil {
		return err
	}
	defer one.Free()
	sum, err := g.AllSum(one)
	if err != nil {
		return err
	}
	defer sum.Free()
	return g.Eval(ctx, sum)
}

// AllSumSlice all-sums xs, which must have the same length on every rank,
// and returns the evaluated sums. It is the eager form of AllSum for data
// that lives in Go.
func AllSumSlice[T mlx.Element](ctx context.Context, g *Group, xs []T) ([]T, error) {
	return sliceCollective(ctx, g, xs, g.AllSum)
}

// AllGatherSlice concatenates xs from every rank in rank order.
func AllGatherSlice[T mlx.Element](ctx context.Context, g *Group, xs []T) ([]T, error) {
	return sliceCollective(ctx, g, xs, g.AllGather)
}

// AllGatherValue gathers one value from every rank, in rank order: each
// rank's v is encoded as JSON (so T's exported fields travel, under their
// JSON names), the encodings are gathered, and rank r's comes back as
// element r. It is for the small figures a job reports, not for tensors:
//
//	type figures struct{ LoadS float64; Peak int64 }
//	all, err := jaccl.AllGatherValue(ctx, g, figures{LoadS: t, Peak: peak})
//	// all[r] is rank r's figures, on every rank
func AllGatherValue[T any](ctx context.Context, g *Group, v T) ([]T, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("jaccl: gathering a %T: %w", v, err)
	}
	lens, err := AllGatherSlice(ctx, g, []int64{int64(len(b))})
	if err != nil {
		return nil, err
	}
	width := slices.Max(lens)
	// Every rank sends the same number of bytes, so pad to the longest.
	padded := make([]uint8, width)
	copy(padded, b)
	all, err := AllGatherSlice(ctx, g, padded)
	if err != nil {
		return nil, err
	}
	if int64(len(all)) != width*int64(len(lens)) {
		return nil, fmt.Errorf("jaccl: gathered %d bytes from %d ranks, want %d", len(all), len(lens), width*int64(len(lens)))
	}
	out := make([]T, len(lens))
	for r, n := range lens {
		part := all[int64(r)*width : int64(r)*width+n]
		if err := json.Unmarshal(part, &out[r]); err != nil {
			return nil, fmt.Errorf("jaccl: rank %d's %T: %w", r, v, err)
		}
	}
	return out, nil
}

func sliceCollective[T mlx.Element](ctx context.Context, g *Group, xs []T, op func(*mlx.Array) (*mlx.Array, error)) ([]T, error) {
	if len(xs) == 0 {
		return nil, errors.New("jaccl: a collective needs at least one element")
	}
	var out []T
	// One trip to the MLX thread for the whole exchange: for small arrays
	// the trips would cost more than the collective.
	err := mlx.Do(func() error {
		x, err := mlx.FromSlice(xs)
		if err != nil {
			return err
		}
		defer x.Free()
		y, err := op(x)
		if err != nil {
			return err
		}
		defer y.Free()
		if err := g.Eval(ctx, y); err != nil {
			return err
		}
		out, err = mlx.ToSlice[T](y)
		return err
	})
	return out, err
}

// String describes the group as "rank r of n (backend)".
func (g *Group) String() string {
	return fmt.Sprintf("rank %d of %d (%s)", g.Rank(), g.Size(), g.backend)
}

// Timeout is how long the evaluating helpers wait for the peers before the
// group gives up (Options.Timeout, or DefaultTimeout); 0 when they wait
// forever.
func (g *Group) Timeout() time.Duration { return max(g.timeout, 0) }
