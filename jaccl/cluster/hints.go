package cluster

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// The failures Explain recognises. Each is matched by errors.Is on the
// *BackendError that Explain returns; its text is the diagnosis.
var (
	ErrQueuePairRTR     = errors.New("RDMA queue pair could not reach RTR: the Thunderbolt interface is still a member of bridge0, bridge0 is up, or the interface has no IPv4 address (so no IPv4-mapped GID)")
	ErrRDMATimeout      = errors.New("RDMA or coordinator connection timed out (ETIMEDOUT): the Thunderbolt interface is still a bridge member, or rank 0's coordinator is unreachable")
	ErrQueuePairBusy    = errors.New("RDMA device busy (EBUSY): too many queue pairs on one device (at most about 10), usually another jaccl process still running")
	ErrNoDevice         = errors.New("RDMA device not found: the hostfile names a device this machine does not have, or the Thunderbolt cable is unplugged")
	ErrRDMADisabled     = errors.New("could not allocate an RDMA protection domain: RDMA is not enabled on this machine")
	ErrTooManyPeers     = errors.New("jaccl supports at most 8 peers in a mesh")
	ErrJACCLUnavailable = errors.New("this MLX build has no jaccl back-end (it needs macOS 26.2 or later and an MLX wheel built for it)")
	ErrNotLaunched      = errors.New("the back-end's environment is missing: the program was not started by a launcher")
	ErrRingConnect      = errors.New("ring back-end could not connect to a peer: the peer is not running, not listening yet, or its address is wrong or firewalled")
	ErrRingListen       = errors.New("ring back-end could not listen on its address: the port is in use or the IP is not one of this machine's")
	ErrPeerLost         = errors.New("connection to a peer was lost: another rank exited or crashed")
	ErrSizeOne          = errors.New("the launcher set up several ranks but the distributed group has size 1")
)

// BackendError is a distributed back-end failure with what to do about it.
// Cause is the original error (its message is kept verbatim), Kind the
// recognised failure (one of the Err* values above) and Fix the remedy.
type BackendError struct {
	Backend Backend
	Kind    error
	Cause   error
	Fix     string
}

func (e *BackendError) Error() string {
	return fmt.Sprintf("%s: %v: %v; fix: %s", e.Backend, e.Cause, e.Kind, e.Fix)
}

// Unwrap returns both the recognised kind and the original error, so
// errors.Is works with either.
func (e *BackendError) Unwrap() []error { return []error{e.Kind, e.Cause} }

type hint struct {
	backend Backend
	kind    error
	match   *regexp.Regexp
	fix     string
}

// The fixes come from troubleshooting two-Mac Thunderbolt RDMA clusters. errno values are
// macOS ones (jaccl is macOS-only): 22 EINVAL, 60 ETIMEDOUT, 16 EBUSY; the
// ring ones also match Linux's numbers since ring runs there too. Order
// matters: the first match wins, so errno 16 and 60 are looked for before
// the queue-pair transition that reported them.
var hints = []hint{
	{JACCL, ErrQueuePairBusy, regexp.MustCompile(`\[jaccl\].*(errno[ =]16\b|error: 16\b|Couldn't create queue pair)`),
		"stop the other jaccl process on this machine (ps aux | grep -i mlx) and keep at most 10 queue pairs per device"},
	{JACCL, ErrRDMATimeout, regexp.MustCompile(`(\[jaccl\].*(errno[ =]60\b|error: 60\b))|Operation timed out|ETIMEDOUT`),
		"remove the Thunderbolt interfaces from bridge0 (sudo ifconfig bridge0 deletem enX; bridge0 down alone is not enough); check that MLX_JACCL_COORDINATOR is rank 0's LAN IP (hosts[0].ips[0], not a Thunderbolt address) and that rank 0 starts first"},
	{JACCL, ErrQueuePairRTR, regexp.MustCompile(`Changing queue pair to RT[RS] failed`),
		"on every node: sudo ifconfig bridge0 down; sudo ifconfig bridge0 deletem enX (each Thunderbolt interface); give each enX its own /30 (sudo ifconfig en3 10.10.0.1/30 up), outside the Wi-Fi subnet and without route commands; or run tbnet plan, then tbnet apply"},
	{JACCL, ErrNoDevice, regexp.MustCompile(`Could not (find|open) device (rdma_\S+)`),
		"run ibv_devices on each node and put the names it lists in the hostfile's rdma matrix; check that the Thunderbolt cable is plugged in"},
	{JACCL, ErrRDMADisabled, regexp.MustCompile(`Couldn't allocate protection domain`),
		"boot into Recovery, run rdma_ctl enable, reboot, and check that rdma_ctl status says enabled"},
	{JACCL, ErrTooManyPeers, regexp.MustCompile(`maximum number of supported peers`),
		"use at most 8 hosts with jaccl, or the ring back-end for more"},
	{JACCL, ErrJACCLUnavailable, regexp.MustCompile(`Cannot initialize jaccl distributed backend`),
		"run on macOS 26.2 or later with a current MLX wheel; elsewhere pick the ring back-end explicitly"},
	{JACCL, ErrNotLaunched, regexp.MustCompile(`\[jaccl\] You need to provide via environment variables`),
		"start every rank with the launcher: launch --hostfile hosts.json -- CMD (it sets MLX_RANK, MLX_IBV_DEVICES and MLX_JACCL_COORDINATOR)"},
	{Ring, ErrNotLaunched, regexp.MustCompile(`\[ring\] You need to provide via environment variables`),
		"start every rank with the launcher: launch -n N -- CMD or launch --hostfile hosts.json -- CMD (it sets MLX_RANK and MLX_HOSTFILE)"},
	{Ring, ErrRingListen, regexp.MustCompile(`\[ring\] Couldn't (bind|listen)`),
		"make sure no earlier run still holds the port (lsof -i :32323) and that each host's ips are its own addresses"},
	{Ring, ErrRingConnect, regexp.MustCompile(`\[ring\] Couldn't connect`),
		"start every rank (the launcher does it), check the hostfile's ips are reachable from every host, and that no firewall blocks the ring ports (32323 and up)"},
	{Ring, ErrPeerLost, regexp.MustCompile(`connection to a peer was lost|Recv failed|Send failed`),
		"look at the other ranks' output for the first failure; this rank only saw its peer go away"},
}

// Explain recognises a distributed back-end failure in err's message and
// returns a *BackendError carrying the fix, wrapping err. An unrecognised
// err (or nil) is returned unchanged.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var be *BackendError
	if errors.As(err, &be) {
		return err
	}
	if h := findHint(err.Error()); h != nil {
		return &BackendError{Backend: h.backend, Kind: h.kind, Cause: err, Fix: h.fix}
	}
	return err
}

// ExplainText looks for a known failure in text, such as a rank's output,
// and returns a *BackendError whose Cause is the matching line, or nil when
// it finds none.
func ExplainText(text string) error {
	// The first failure in the output is the interesting one; later lines
	// are usually its consequences.
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if h := findHint(line); h != nil {
			return &BackendError{Backend: h.backend, Kind: h.kind, Cause: errors.New(line), Fix: h.fix}
		}
	}
	return nil
}

func findHint(msg string) *hint {
	for i := range hints {
		if hints[i].match.MatchString(msg) {
			return &hints[i]
		}
	}
	return nil
}

// CheckWorldSize returns a *BackendError of kind ErrSizeOne when a launcher
// announced more than one rank in MLX_WORLD_SIZE but the group that init
// returned has size one: the back-end silently fell back to a singleton
// (strict=false with a broken setup), and every collective would return its
// input unchanged.
func CheckWorldSize(b Backend, size int) error {
	return checkWorldSize(b, os.Getenv("MLX_WORLD_SIZE"), size)
}

func checkWorldSize(b Backend, announced string, size int) error {
	want, err := strconv.Atoi(announced)
	if err != nil || want <= 1 || size != 1 {
		return nil
	}
	return &BackendError{
		Backend: b,
		Kind:    ErrSizeOne,
		Cause:   fmt.Errorf("launcher set up %d ranks but init returned a group of size 1", want),
		Fix:     fmt.Sprintf("initialise strictly so the real failure shows (backend %q, strict), and check that this MLX build has the %s back-end", b.MLXName(), b.MLXName()),
	}
}
