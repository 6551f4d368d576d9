package netcfg

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mlxdist/mlxdist/internal/oneline"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// Backend is the distributed back-end the plan prepares for, named as in
// the cluster description (package cluster).
type Backend = cluster.Backend

const (
	// BackendJACCL is RDMA over Thunderbolt; it needs a full mesh.
	BackendJACCL = cluster.JACCL
	// BackendJACCLRing is jaccl with MLX_JACCL_RING=1; it needs a ring.
	BackendJACCLRing = cluster.JACCLRing
	// BackendRing is MLX's TCP ring over the Thunderbolt addresses.
	BackendRing = cluster.Ring
)

// DefaultPool is where cable subnets come from unless Options.Pool says
// otherwise: cable i gets 10.10.i.0/30, one cable per third octet.
var DefaultPool = netip.MustParsePrefix("10.10.0.0/16")

// PrivatePools are the ranges a pool must lie inside: the private ranges of
// RFC 1918 and link-local space. A public pool would give Thunderbolt ports
// addresses that belong to someone else's network.
var PrivatePools = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"),
}

// fallbackPools are tried, in order, after DefaultPool when Options.Pool is
// not set and the default pool has no room (a VPN that routes all of
// 10.0.0.0/8, say).
var fallbackPools = []netip.Prefix{
	netip.MustParsePrefix("172.31.0.0/16"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// ErrPublicPool is matched by the error MakePlan returns for a pool that is
// not inside PrivatePools.
var ErrPublicPool = errors.New("netcfg: the pool is not private address space")

// MinMacOS is the first macOS with RDMA over Thunderbolt for jaccl.
const MinMacOS = "26.2"

// MaxJACCLNodes is the largest jaccl mesh.
const MaxJACCLNodes = 8

// alwaysReserved are ranges no cable subnet may take on any cluster.
var alwaysReserved = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("100.64.0.0/10"), "Tailscale / carrier-grade NAT range 100.64.0.0/10"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback 127.0.0.0/8"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local 169.254.0.0/16"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast 224.0.0.0/4"},
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network 0.0.0.0/8"},
}

// Options tune MakePlan.
type Options struct {
	Backend Backend      // BackendJACCL when empty
	Pool    netip.Prefix // DefaultPool when invalid (zero), then the next free private pool
	Envs    []string     // the hostfile's "envs"
}

// Link is one cable and the /30 it was given: A gets the first host address,
// B the second.
type Link struct {
	A      Endpoint     `json:"-"`
	B      Endpoint     `json:"-"`
	Subnet netip.Prefix `json:"subnet"`
	AddrA  netip.Prefix `json:"addr_a"`
	AddrB  netip.Prefix `json:"addr_b"`
}

type linkJSON struct {
	A      string       `json:"a"`
	B      string       `json:"b"`
	Subnet netip.Prefix `json:"subnet"`
	AddrA  netip.Prefix `json:"addr_a"`
	AddrB  netip.Prefix `json:"addr_b"`
}

func (l Link) MarshalJSON() ([]byte, error) {
	return json.Marshal(linkJSON{l.A.String(), l.B.String(), l.Subnet, l.AddrA, l.AddrB})
}

func (l *Link) UnmarshalJSON(b []byte) error {
	var j linkJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	a, okA := parseEndpoint(j.A)
	bb, okB := parseEndpoint(j.B)
	if !okA || !okB {
		return fmt.Errorf("link ends %q, %q are not node:interface", j.A, j.B)
	}
	*l = Link{A: a, B: bb, Subnet: j.Subnet, AddrA: j.AddrA, AddrB: j.AddrB}
	return nil
}

// Skip is a pool subnet passed over, and why.
type Skip struct {
	Subnet netip.Prefix `json:"subnet"`
	Reason string       `json:"reason"`
}

// StepKind names what a step does.
type StepKind string

const (
	StepBridgeDown    StepKind = "bridge-down"
	StepBridgeRemove  StepKind = "bridge-deletem"
	StepSetAddress    StepKind = "address"
	StepBridgeAdd     StepKind = "bridge-addm"
	StepBridgeUp      StepKind = "bridge-up"
	StepRemoveAddress StepKind = "address-remove"
)

// Step is one command for one node, with what it is meant to achieve, so
// Apply can skip it when the node already is that way.
type Step struct {
	Node      string       `json:"node"`
	Kind      StepKind     `json:"kind"`
	Bridge    string       `json:"bridge,omitempty"`
	Interface string       `json:"interface,omitempty"`
	Address   netip.Prefix `json:"address,omitzero"`
	Command   Command      `json:"command"`
}

// Plan is the network setup of a cluster: addresses per cable, the commands
// per node, and the hostfile mlx.launch reads. Every Plan that MakePlan or
// ReadPlan returns has passed CheckSafe.
type Plan struct {
	Backend Backend      `json:"backend"`
	Pool    netip.Prefix `json:"pool"`
	// PoolNote says why the pool is not DefaultPool when MakePlan chose
	// another by itself.
	PoolNote string   `json:"pool_note,omitempty"`
	Nodes    []string `json:"nodes"`
	// Thunderbolt lists each node's Thunderbolt interfaces; Protected its
	// LAN and other interfaces, which no command may name.
	Thunderbolt map[string][]string `json:"thunderbolt"`
	Protected   map[string][]string `json:"protected"`
	Links       []Link              `json:"links"`
	Skipped     []Skip              `json:"skipped,omitempty"`
	Steps       []Step              `json:"steps"`
	Hostfile    cluster.Hostfile    `json:"hostfile"`
}

// PoolExhaustedError says the pool had no room for every cable, and what
// the passed-over subnets overlapped.
type PoolExhaustedError struct {
	Pool     netip.Prefix
	Cables   int
	Assigned int
	Overlaps []string
}

func (e *PoolExhaustedError) Error() string {
	msg := fmt.Sprintf("netcfg: pool %s has room for %d of %d cables", e.Pool, e.Assigned, e.Cables)
	if len(e.Overlaps) > 0 {
		msg += "; subnets overlapped " + oneline.Join(e.Overlaps, 3, "; ")
	}
	return msg + "; choose another pool with --pool"
}

// PreflightError lists every reason the cluster is not ready for the back-end.
type PreflightError struct {
	Backend  Backend
	Problems []string
}

// Error names the first problems and counts the rest, so that a large
// cluster's report stays one readable line; Problems holds them all.
func (e *PreflightError) Error() string {
	return fmt.Sprintf("netcfg: cluster not ready for %s: %s", e.Backend, oneline.Join(e.Problems, 3, "; "))
}

type reservation struct {
	p    netip.Prefix
	what string
}

// reservations gathers every range a cable subnet must avoid.
func reservations(c *Cluster, cabled map[Endpoint]bool) []reservation {
	var rs []reservation
	for _, a := range alwaysReserved {
		rs = append(rs, reservation{a.p, a.what})
	}
	for _, n := range c.Nodes {
		if n.LAN != nil {
			p, _ := parseV4Prefix(n.LAN.Address)
			rs = append(rs, reservation{p.Masked(), fmt.Sprintf("LAN %s on %s of %s", p, n.LAN.Interface, n.Name)})
		}
		for _, o := range n.Other {
			p, _ := parseV4Prefix(o.Address)
			rs = append(rs, reservation{p.Masked(), fmt.Sprintf("%s address %s on %s", o.Interface, p, n.Name)})
		}
		for _, r := range n.Routes {
			p, _ := parseV4Prefix(r)
			rs = append(rs, reservation{p.Masked(), fmt.Sprintf("route %s on %s", p.Masked(), n.Name)})
		}
		for _, t := range n.Thunderbolt {
			if t.Address != "" && !cabled[Endpoint{n.Name, t.Interface}] {
				p, _ := parseV4Prefix(t.Address)
				rs = append(rs, reservation{p.Masked(), fmt.Sprintf("uncabled %s address %s on %s", t.Interface, p, n.Name)})
			}
		}
	}
	return rs
}

// MakePlan plans the Thunderbolt network of c: one /30 per cable from the
// pool, skipping any subnet that overlaps an address or route of any node;
// bridge teardown; addresses; the hostfile. It never plans a route command
// and never touches a LAN interface: the result passes CheckSafe or is not
// returned.
func MakePlan(c *Cluster, opts Options) (*Plan, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if opts.Backend == "" {
		opts.Backend = BackendJACCL
	}
	switch opts.Backend {
	case BackendJACCL, BackendJACCLRing, BackendRing:
	default:
		return nil, fmt.Errorf("netcfg: unknown backend %q (want jaccl, jaccl-ring or ring)", opts.Backend)
	}
	if err := checkEnvs(opts.Envs); err != nil {
		return nil, err
	}
	if !opts.Pool.IsValid() {
		p, err := planPool(c, opts, DefaultPool)
		var ex *PoolExhaustedError
		if !errors.As(err, &ex) {
			return p, err
		}
		for _, alt := range fallbackPools {
			if p, err2 := planPool(c, opts, alt); err2 == nil {
				p.PoolNote = fmt.Sprintf("the default pool %s has no room: %s", DefaultPool, oneline.Join(ex.Overlaps, 2, "; "))
				return p, nil
			}
		}
		return nil, err
	}
	return planPool(c, opts, opts.Pool)
}

// checkEnvs refuses hostfile envs the launchers would reject.
func checkEnvs(envs []string) error {
	for _, e := range envs {
		name, _, ok := strings.Cut(e, "=")
		if !ok || !envName.MatchString(name) {
			return fmt.Errorf("netcfg: env %q is not NAME=value with NAME a shell variable name", e)
		}
	}
	return nil
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkPool refuses pools a cable subnet cannot come from.
func checkPool(pool netip.Prefix) error {
	if !pool.Addr().Is4() || pool.Bits() > 30 {
		return fmt.Errorf("netcfg: pool %s must be an IPv4 prefix of /30 or larger", pool)
	}
	for _, priv := range PrivatePools {
		if priv.Bits() <= pool.Bits() && priv.Contains(pool.Addr()) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 169.254.0.0/16; choose a pool there, such as the default %s",
		ErrPublicPool, pool, DefaultPool)
}

// planPool is MakePlan with one pool.
func planPool(c *Cluster, opts Options, pool netip.Prefix) (*Plan, error) {
	if err := checkPool(pool); err != nil {
		return nil, err
	}
	pool = pool.Masked()
	if err := preflight(c, opts.Backend); err != nil {
		return nil, err
	}

	cables := c.sortedCables()
	cabled := map[Endpoint]bool{}
	for _, cb := range cables {
		cabled[cb[0]], cabled[cb[1]] = true, true
	}
	rs := reservations(c, cabled)

	p := &Plan{Backend: opts.Backend, Pool: pool, Thunderbolt: map[string][]string{}, Protected: map[string][]string{}}
	// In a /16 or larger pool cable i takes the first /30 of the i-th /24
	// (10.10.0.0/30, 10.10.1.0/30, ...: easy to read, one cable per
	// third octet); a smaller pool is packed with consecutive /30s.
	stride := 24
	if pool.Bits() > 16 {
		stride = 30
	}
	total := uint64(1) << (stride - pool.Bits())
	overlapCount := map[string]int{}
	var overlapOrder []string
	next := uint64(0)
	for _, cb := range cables {
		var got netip.Prefix
		for ; next < total && !got.IsValid(); next++ {
			base := addrAdd(pool.Addr(), uint32(next<<(32-stride)))
			sub := netip.PrefixFrom(base, 30)
			var why []string
			for _, r := range rs {
				if r.p.Overlaps(sub) {
					why = append(why, r.what)
				}
			}
			if len(why) > 0 {
				p.Skipped = append(p.Skipped, Skip{Subnet: sub, Reason: "overlaps " + strings.Join(why, ", ")})
				for _, w := range why {
					if overlapCount[w] == 0 {
						overlapOrder = append(overlapOrder, w)
					}
					overlapCount[w]++
				}
				continue
			}
			got = sub
		}
		if !got.IsValid() {
			e := &PoolExhaustedError{Pool: pool, Cables: len(cables), Assigned: len(p.Links)}
			for _, w := range overlapOrder {
				e.Overlaps = append(e.Overlaps, fmt.Sprintf("%s (%d subnets)", w, overlapCount[w]))
			}
			return nil, e
		}
		p.Links = append(p.Links, Link{
			A: cb[0], B: cb[1], Subnet: got,
			AddrA: netip.PrefixFrom(addrAdd(got.Addr(), 1), 30),
			AddrB: netip.PrefixFrom(addrAdd(got.Addr(), 2), 30),
		})
	}

	for _, n := range c.Nodes {
		p.Nodes = append(p.Nodes, n.Name)
		tb := map[string]bool{}
		for _, t := range n.Thunderbolt {
			p.Thunderbolt[n.Name] = append(p.Thunderbolt[n.Name], t.Interface)
			tb[t.Interface] = true
		}
		prot := []string{}
		if n.LAN != nil {
			prot = append(prot, n.LAN.Interface)
		}
		for _, o := range n.Other {
			prot = append(prot, o.Interface)
		}
		p.Protected[n.Name] = prot

		var managed []string
		for _, l := range p.Links {
			for _, e := range []Endpoint{l.A, l.B} {
				if e.Node == n.Name {
					managed = append(managed, e.Interface)
				}
			}
		}
		sort.Slice(managed, func(i, j int) bool { return ifaceLess(managed[i], managed[j]) })
		isManaged := map[string]bool{}
		for _, m := range managed {
			isManaged[m] = true
		}
		bridges := n.Bridges
		if bridges == nil {
			// The macOS default: the "Thunderbolt Bridge" bridge0 holds every
			// Thunderbolt port. Apply re-checks against the live state.
			b := Bridge{Name: "bridge0", Up: true}
			for _, t := range n.Thunderbolt {
				b.Members = append(b.Members, t.Interface)
			}
			bridges = []Bridge{b}
		}
		for _, b := range bridges {
			var remove []string
			allTB := true
			for _, m := range b.Members {
				if isManaged[m] {
					remove = append(remove, m)
				}
				allTB = allTB && tb[m]
			}
			if len(remove) == 0 {
				continue
			}
			sort.Slice(remove, func(i, j int) bool { return ifaceLess(remove[i], remove[j]) })
			if allTB && b.Up {
				p.Steps = append(p.Steps, Step{Node: n.Name, Kind: StepBridgeDown, Bridge: b.Name,
					Command: Command{"ifconfig", []string{b.Name, "down"}}})
			}
			for _, m := range remove {
				p.Steps = append(p.Steps, Step{Node: n.Name, Kind: StepBridgeRemove, Bridge: b.Name, Interface: m,
					Command: Command{"ifconfig", []string{b.Name, "deletem", m}}})
			}
		}
		for _, l := range p.Links {
			for _, e := range []struct {
				ep   Endpoint
				addr netip.Prefix
			}{{l.A, l.AddrA}, {l.B, l.AddrB}} {
				if e.ep.Node == n.Name {
					p.Steps = append(p.Steps, addressStep(n.Name, e.ep.Interface, e.addr))
				}
			}
		}
	}
	p.Hostfile = makeHostfile(c, p, opts.Envs)
	if err := CheckSafe(p); err != nil {
		return nil, err
	}
	return p, nil
}

// addressStep sets a /30 as `ifconfig enX inet A.B.C.D/30 up`: the family
// is named, so the command means the same whatever ifconfig's default, and
// address and prefix length travel in one token, so the mask cannot be
// mistyped apart from the address (the form people type, with `inet` added).
func addressStep(node, iface string, addr netip.Prefix) Step {
	return Step{Node: node, Kind: StepSetAddress, Interface: iface, Address: addr,
		Command: Command{"ifconfig", []string{iface, "inet", addr.String(), "up"}}}
}

func addrAdd(a netip.Addr, n uint32) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func preflight(c *Cluster, b Backend) error {
	var probs []string
	if len(c.Nodes) < 2 {
		probs = append(probs, fmt.Sprintf("%d node; a distributed setup needs at least two", len(c.Nodes)))
	}
	cabledPair := map[[2]string]bool{}
	for _, cb := range c.Cables {
		a, _ := parseEndpoint(cb.A)
		bb, _ := parseEndpoint(cb.B)
		cabledPair[[2]string{a.Node, bb.Node}], cabledPair[[2]string{bb.Node, a.Node}] = true, true
	}
	if b == BackendJACCL || b == BackendJACCLRing {
		if len(c.Nodes) > MaxJACCLNodes {
			probs = append(probs, fmt.Sprintf("%d nodes; jaccl supports at most %d", len(c.Nodes), MaxJACCLNodes))
		}
		var first string
		min, _ := parseVersion(MinMacOS)
		for _, n := range c.Nodes {
			if !n.RDMAEnabled {
				probs = append(probs, fmt.Sprintf("RDMA is disabled on %s: run `rdma_ctl enable` in macOS Recovery, then reboot", n.Name))
			}
			if n.LAN == nil {
				probs = append(probs, fmt.Sprintf("%s has no LAN address for the jaccl coordinator", n.Name))
			}
			switch v, err := parseVersion(n.MacOS); {
			case n.MacOS == "" || err != nil:
				probs = append(probs, fmt.Sprintf("macOS version of %s unknown; jaccl needs %s or later on every node", n.Name, MinMacOS))
			case v.less(min):
				probs = append(probs, fmt.Sprintf("%s runs macOS %s; jaccl needs %s or later", n.Name, n.MacOS, MinMacOS))
			case first == "":
				first = n.MacOS
			case n.MacOS != first:
				probs = append(probs, fmt.Sprintf("%s runs macOS %s but %s runs %s; use the same version everywhere", n.Name, n.MacOS, c.Nodes[0].Name, first))
			}
		}
		for _, cb := range c.Cables {
			for _, s := range []string{cb.A, cb.B} {
				ep, _ := parseEndpoint(s)
				if pt := c.node(ep.Node).port(ep.Interface); pt.RDMA == "" {
					probs = append(probs, fmt.Sprintf("%s has no rdma_ device (ibv_devices should list rdma_%s)", ep, ep.Interface))
				}
			}
		}
	}
	switch b {
	case BackendJACCL:
		for i := range c.Nodes {
			for j := i + 1; j < len(c.Nodes); j++ {
				if !cabledPair[[2]string{c.Nodes[i].Name, c.Nodes[j].Name}] {
					probs = append(probs, fmt.Sprintf("no cable between %s and %s; jaccl needs a full mesh (use --backend jaccl-ring for a ring)", c.Nodes[i].Name, c.Nodes[j].Name))
				}
			}
		}
	case BackendJACCLRing, BackendRing:
		for i := range c.Nodes {
			j := (i + 1) % len(c.Nodes)
			if i != j && !cabledPair[[2]string{c.Nodes[i].Name, c.Nodes[j].Name}] {
				probs = append(probs, fmt.Sprintf("no cable between %s and %s; %s needs each node cabled to the next", c.Nodes[i].Name, c.Nodes[j].Name, b))
			}
		}
	}
	if len(probs) > 0 {
		return &PreflightError{Backend: b, Problems: probs}
	}
	return nil
}

// makeHostfile writes the plan as the file mlx.launch reads. For jaccl,
// RDMA[i][j] lists node i's RDMA devices on the cables to node j; nil on
// the diagonal and between nodes with no cable.
func makeHostfile(c *Cluster, p *Plan, envs []string) cluster.Hostfile {
	h := cluster.Hostfile{Backend: p.Backend, Envs: append([]string{}, envs...)}
	idx := map[string]int{}
	for i, n := range c.Nodes {
		idx[n.Name] = i
	}
	for i, n := range c.Nodes {
		host := cluster.Host{SSH: n.sshHost(), IPs: []string{}}
		if p.Backend == BackendRing {
			// A ring rank listens on the addresses its left neighbour
			// reaches it by.
			left := c.Nodes[(i+len(c.Nodes)-1)%len(c.Nodes)].Name
			for _, l := range p.Links {
				switch {
				case l.A.Node == n.Name && l.B.Node == left:
					host.IPs = append(host.IPs, l.AddrA.Addr().String())
				case l.B.Node == n.Name && l.A.Node == left:
					host.IPs = append(host.IPs, l.AddrB.Addr().String())
				}
			}
		} else {
			if n.LAN != nil {
				lp, _ := parseV4Prefix(n.LAN.Address)
				host.IPs = append(host.IPs, lp.Addr().String())
			}
			host.RDMA = make([]cluster.Devices, len(c.Nodes))
			for _, l := range p.Links {
				for _, e := range [][2]Endpoint{{l.A, l.B}, {l.B, l.A}} {
					if e[0].Node == n.Name {
						j := idx[e[1].Node]
						host.RDMA[j] = append(host.RDMA[j], c.node(n.Name).port(e[0].Interface).RDMA)
					}
				}
			}
		}
		h.Hosts = append(h.Hosts, host)
	}
	return h
}

// NodeSteps returns the plan's steps for one node, in order.
func (p *Plan) NodeSteps(node string) []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Node == node {
			out = append(out, s)
		}
	}
	return out
}

// WriteText writes the plan as a person reads it: the skipped subnets, then
// each node's commands, ready to paste.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# backend %s, pool %s\n", p.Backend, p.Pool)
	for _, l := range p.Links {
		fmt.Fprintf(&b, "# cable %s <-> %s: %s (%s, %s)\n", l.A, l.B, l.Subnet, l.AddrA.Addr(), l.AddrB.Addr())
	}
	if p.PoolNote != "" {
		fmt.Fprintf(&b, "# pool %s chosen because %s\n", p.Pool, p.PoolNote)
	}
	// One line per reason, however many subnets it cost.
	var reasons []string
	byReason := map[string][]netip.Prefix{}
	for _, s := range p.Skipped {
		if byReason[s.Reason] == nil {
			reasons = append(reasons, s.Reason)
		}
		byReason[s.Reason] = append(byReason[s.Reason], s.Subnet)
	}
	for _, r := range reasons {
		subs := byReason[r]
		if len(subs) == 1 {
			fmt.Fprintf(&b, "# skipped %s: %s\n", subs[0], r)
			continue
		}
		fmt.Fprintf(&b, "# skipped %d subnets, %s to %s: %s\n", len(subs), subs[0], subs[len(subs)-1], r)
	}
	for _, n := range p.Nodes {
		fmt.Fprintf(&b, "\n## %s\n", n)
		for _, s := range p.NodeSteps(n) {
			fmt.Fprintf(&b, "sudo %s\n", s.Command)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ReadPlan reads a plan saved as JSON and runs it through CheckSafe again,
// since a file can be edited after MakePlan wrote it.
func ReadPlan(r io.Reader) (*Plan, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("netcfg: reading plan: %w", err)
	}
	if err := CheckSafe(&p); err != nil {
		return nil, err
	}
	return &p, nil
}
