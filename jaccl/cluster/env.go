package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Backend names a distributed back-end of MLX, or jaccl-ring, which is a
// launcher name for jaccl with MLX_JACCL_RING=1.
type Backend string

// The back-ends MLX knows. Any lets MLX pick (nccl, ring, mpi, jaccl in that
// order); a job that asks for JACCL never silently falls back to Ring.
const (
	Any       Backend = "any"
	Ring      Backend = "ring"
	MPI       Backend = "mpi"
	NCCL      Backend = "nccl"
	JACCL     Backend = "jaccl"
	JACCLRing Backend = "jaccl-ring"
)

// ErrUnknownBackend is returned by ParseBackend for a name it does not know.
var ErrUnknownBackend = errors.New("unknown back-end")

// ParseBackend parses a back-end name as mlx.launch and mx.distributed.init
// spell it.
func ParseBackend(s string) (Backend, error) {
	switch b := Backend(strings.ToLower(strings.TrimSpace(s))); b {
	case Any, Ring, MPI, NCCL, JACCL, JACCLRing:
		return b, nil
	}
	return "", fmt.Errorf("%w %q (want any, ring, mpi, nccl, jaccl or jaccl-ring)", ErrUnknownBackend, s)
}

func (b Backend) String() string { return string(b) }

// MLXName returns the name MLX's distributed init receives: jaccl-ring is
// jaccl as far as MLX is concerned (the ring shape comes from the
// environment).
func (b Backend) MLXName() string {
	if b == JACCLRing {
		return string(JACCL)
	}
	return string(b)
}

// Default ports, as mlx.launch uses them: the ring back-end listens on
// RingPort and the ports after it (one per rank and address), the jaccl
// coordinator on rank 0 listens on RingPort too, and nccl uses NCCLPort.
const (
	RingPort = 32323
	NCCLPort = 12345
)

// EnvOptions tune RankEnv.
type EnvOptions struct {
	// Backend overrides the hostfile's back-end; with neither set, ring.
	Backend Backend
	// Port is the first ring port and the jaccl coordinator port; 0 means
	// RingPort.
	Port int
	// Ports, when set, gives the ring port of every address in rank order
	// (one per entry of every host's IPs) and replaces Port for them; the
	// launcher fills it with free ports for ranks on one machine.
	Ports []int
	// NCCLPort is nccl's rendezvous port; 0 means NCCLPort.
	NCCLPort int
	// Env holds extra "NAME=value" pairs exported after the hostfile's envs.
	Env []string
	// Verbose asks the back-end to log: MLX_RING_VERBOSE=1, NCCL_DEBUG=INFO.
	Verbose bool
}

// EnvFile is a variable whose value is the path of a temporary file holding
// Content (MLX_HOSTFILE, MLX_IBV_DEVICES).
type EnvFile struct {
	Name    string
	Content []byte
}

// RankEnv is exactly what one rank reads from its environment.
type RankEnv struct {
	Rank    int
	Size    int
	Backend Backend
	// Vars are "NAME=value" pairs in export order: the hostfile's envs, the
	// extra ones, then the back-end's; a later pair wins over an earlier one
	// of the same name.
	Vars []string
	// Files are written to temporary files whose paths are exported after
	// Vars.
	Files []EnvFile
}

// mlxVars are the variables a launcher owns: inherited values of these from
// the launching process are dropped so a stale MLX_IBV_DEVICES cannot leak
// into a ring job.
var mlxVars = []string{
	"MLX_RANK", "MLX_WORLD_SIZE", "MLX_HOSTFILE", "MLX_RING_VERBOSE",
	"MLX_IBV_DEVICES", "MLX_JACCL_COORDINATOR", "MLX_JACCL_RING",
	"JACCL_IBV_DEVICES", "JACCL_COORDINATOR", "JACCL_RING",
	"NCCL_HOST_IP", "NCCL_PORT",
}

// LauncherVars returns the names of the variables a launcher sets for each
// rank (and drops when inherited).
func LauncherVars() []string { return slices.Clone(mlxVars) }

// NewRankEnv works out rank's environment for a job on hf.
//
// Every back-end gets MLX_RANK and MLX_WORLD_SIZE (MLX reads the latter only
// for nccl, but a Go group uses it to notice a launcher that set up N ranks
// while init returned a group of one). Then:
//
//   - ring: MLX_HOSTFILE names a file holding a JSON list with one entry per
//     rank, each a list of "ip:port" strings, ports counting up from Port
//     across every address of every host as mlx.launch counts them. A single
//     rank gets no MLX_HOSTFILE: MLX's ring blocks on a one-entry list, and
//     without the variable init gives the size-1 group.
//   - jaccl, jaccl-ring: MLX_IBV_DEVICES names a file holding the N×N device
//     matrix, MLX_JACCL_COORDINATOR is Hosts[0].IPs[0]:Port, and jaccl-ring
//     adds MLX_JACCL_RING=1.
//   - nccl: NCCL_HOST_IP (Hosts[0].IPs[0]), NCCL_PORT, and
//     CUDA_VISIBLE_DEVICES set to the rank's position among the ranks of its
//     host, unless the hostfile's envs or the caller set it.
//   - mpi: mpirun sets up the ranks itself, so there is nothing to compute;
//     NewRankEnv returns an error.
func NewRankEnv(hf *Hostfile, rank int, opt EnvOptions) (*RankEnv, error) {
	b := opt.Backend
	if b == "" || b == Any {
		b = hf.Backend
	}
	if b == "" || b == Any {
		b = Ring
	}
	if b == MPI {
		return nil, fmt.Errorf("jaccl: the mpi back-end is launched by mpirun, not by this launcher")
	}
	if err := hf.Validate(b); err != nil {
		return nil, err
	}
	n := len(hf.Hosts)
	if rank < 0 || rank >= n {
		return nil, fmt.Errorf("jaccl: rank %d out of range for %d hosts", rank, n)
	}
	port := opt.Port
	if port == 0 {
		port = RingPort
	}
	for _, e := range opt.Env {
		name, _, ok := strings.Cut(e, "=")
		if !ok || !envNameRe.MatchString(name) {
			return nil, fmt.Errorf("jaccl: environment entry %q is not NAME=value", e)
		}
	}

	re := &RankEnv{Rank: rank, Size: n, Backend: b}
	re.Vars = append(re.Vars, hf.Envs...)
	re.Vars = append(re.Vars, opt.Env...)
	switch b {
	case Ring:
		if opt.Verbose {
			re.Vars = append(re.Vars, "MLX_RING_VERBOSE=1")
		}
		if n > 1 {
			content, err := ringHostfile(hf, port, opt.Ports)
			if err != nil {
				return nil, err
			}
			re.Files = append(re.Files, EnvFile{Name: "MLX_HOSTFILE", Content: content})
		}
	case JACCL, JACCLRing:
		re.Vars = append(re.Vars, "MLX_JACCL_COORDINATOR="+hf.Hosts[0].IPs[0]+":"+strconv.Itoa(port))
		if b == JACCLRing {
			re.Vars = append(re.Vars, "MLX_JACCL_RING=1")
		}
		content, err := json.Marshal(hf.DeviceMatrix())
		if err != nil {
			return nil, fmt.Errorf("jaccl: %w", err)
		}
		re.Files = append(re.Files, EnvFile{Name: "MLX_IBV_DEVICES", Content: append(content, '\n')})
	case NCCL:
		np := opt.NCCLPort
		if np == 0 {
			np = NCCLPort
		}
		if opt.Verbose {
			re.Vars = append(re.Vars, "NCCL_DEBUG=INFO")
		}
		re.Vars = append(re.Vars, "NCCL_HOST_IP="+hf.Hosts[0].IPs[0], "NCCL_PORT="+strconv.Itoa(np))
		// MLX's nccl back-end picks the GPU rank % devices for NCCL, but its
		// default GPU stream stays on device 0, so two ranks of one machine
		// would run their collectives on the wrong GPU ("invalid resource
		// handle"). As mlx.launch does, each rank of a host sees only its
		// own GPU, unless the hostfile or the caller chose the devices.
		if !hasVar(re.Vars, "CUDA_VISIBLE_DEVICES") {
			re.Vars = append(re.Vars, "CUDA_VISIBLE_DEVICES="+strconv.Itoa(localIndex(hf, rank)))
		}
	}
	re.Vars = append(re.Vars, "MLX_WORLD_SIZE="+strconv.Itoa(n), "MLX_RANK="+strconv.Itoa(rank))
	return re, nil
}

// hasVar reports whether vars ("NAME=value") sets name.
func hasVar(vars []string, name string) bool {
	for _, v := range vars {
		if n, _, _ := strings.Cut(v, "="); n == name {
			return true
		}
	}
	return false
}

// localIndex is rank's position among the ranks on its host (same ssh
// name, or the same first IP when there is none).
func localIndex(hf *Hostfile, rank int) int {
	key := func(h Host) string {
		if h.SSH != "" {
			return h.SSH
		}
		if len(h.IPs) > 0 {
			return h.IPs[0]
		}
		return ""
	}
	k, i := key(hf.Hosts[rank]), 0
	for r := 0; r < rank; r++ {
		if key(hf.Hosts[r]) == k {
			i++
		}
	}
	return i
}

// ringHostfile builds the JSON list MLX_HOSTFILE names.
func ringHostfile(hf *Hostfile, port int, ports []int) ([]byte, error) {
	total := 0
	for _, h := range hf.Hosts {
		total += len(h.IPs)
	}
	if ports != nil && len(ports) != total {
		return nil, fmt.Errorf("jaccl: %d ring ports given for %d addresses", len(ports), total)
	}
	k := 0
	list := make([][]string, len(hf.Hosts))
	for i, h := range hf.Hosts {
		list[i] = []string{}
		for _, ip := range h.IPs {
			p := port + k
			if ports != nil {
				p = ports[k]
			}
			list[i] = append(list[i], ip+":"+strconv.Itoa(p))
			k++
		}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("jaccl: %w", err)
	}
	return append(b, '\n'), nil
}

// Write creates the rank's temporary files in dir and returns the complete
// list of "NAME=value" pairs to add to the rank's environment, file paths
// included.
func (re *RankEnv) Write(dir string) ([]string, error) {
	env := append([]string(nil), re.Vars...)
	for _, f := range re.Files {
		tf, err := os.CreateTemp(dir, fmt.Sprintf("rank%d-%s-*.json", re.Rank, strings.ToLower(f.Name)))
		if err != nil {
			return nil, fmt.Errorf("jaccl: %w", err)
		}
		_, werr := tf.Write(f.Content)
		cerr := tf.Close()
		if err := errors.Join(werr, cerr); err != nil {
			return nil, fmt.Errorf("jaccl: writing %s for rank %d: %w", f.Name, re.Rank, err)
		}
		path, err := filepath.Abs(tf.Name())
		if err != nil {
			return nil, fmt.Errorf("jaccl: %w", err)
		}
		env = append(env, f.Name+"="+path)
	}
	return env, nil
}

// Environ returns base (typically os.Environ()) without the variables a
// launcher owns, followed by env.
func Environ(base, env []string) []string {
	out := make([]string, 0, len(base)+len(env))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		owned := false
		for _, v := range mlxVars {
			if name == v {
				owned = true
				break
			}
		}
		if !owned {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// LocalHostfile describes n ranks on this machine, all on 127.0.0.1, as
// `mlx.launch -n N` does.
func LocalHostfile(n int) *Hostfile {
	hf := &Hostfile{Hosts: make([]Host, n)}
	for i := range hf.Hosts {
		hf.Hosts[i] = Host{SSH: "127.0.0.1", IPs: []string{"127.0.0.1"}}
	}
	return hf
}

// ErrInitTimeout is the Kind of the error a rank gets when its group did not
// form in time, and what the launcher reports for a job whose ranks never
// all joined.
var ErrInitTimeout = errors.New("the group did not form in time: a rank never joined")

// DefaultInitTimeout bounds a group's initialisation (jaccl.Init)
// when neither its options nor InitTimeoutEnv say otherwise. jaccl's ranks retry rank 0's coordinator
// for about 15 seconds, so a healthy job forms well within it; a rank that
// was stopped, crashed before init or cannot reach its peers would
// otherwise keep every other rank waiting inside MLX for ever.
const DefaultInitTimeout = 30 * time.Second

// InitTimeoutEnv names the variable (a Go duration, "20s") that sets Init's
// timeout when Options.InitTimeout is zero; the launcher sets it for every
// rank from its --init-timeout.
const InitTimeoutEnv = "MLXDIST_INIT_TIMEOUT"

// JoinedEnv names a path prefix a launcher sets for a local rank: Init
// creates PREFIX.init when it starts and PREFIX when the group has formed,
// so that the launcher can tell which ranks never joined.
const JoinedEnv = "MLXDIST_JOINED"

// LocalRanks reports how many ranks of this job run on this machine,
// including this one: ring ranks whose MLX_HOSTFILE entry has this rank's
// address. It is 1 when nothing says otherwise (jaccl and nccl jobs run a
// rank per host). Ranks that share a machine share its memory, so a memory
// guard should give each 1/LocalRanks of it.
func LocalRanks() int {
	rank, err := strconv.Atoi(firstEnv("MLX_RANK"))
	path := firstEnv("MLX_HOSTFILE")
	if err != nil || path == "" {
		return 1
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 1
	}
	var list [][]string
	if json.Unmarshal(data, &list) != nil || rank < 0 || rank >= len(list) {
		return 1
	}
	host := func(entry []string) string {
		if len(entry) == 0 {
			return ""
		}
		h, _, err := net.SplitHostPort(entry[0])
		if err != nil {
			return entry[0]
		}
		return h
	}
	mine, n := host(list[rank]), 0
	for _, e := range list {
		if host(e) == mine {
			n++
		}
	}
	return max(n, 1)
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
