package netcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Cluster describes the machines and the Thunderbolt cables between them.
// Discovery produces one; a person can write one by hand. It is the input of
// MakePlan.
type Cluster struct {
	Nodes  []Node  `json:"nodes"`
	Cables []Cable `json:"cables"`
}

// Node is one Mac of the cluster.
type Node struct {
	Name string `json:"name"`
	// SSH is the ssh destination and the hostfile's "ssh"; Name when empty.
	SSH string `json:"ssh,omitempty"`
	// LAN is the interface that reaches the other nodes over the ordinary
	// network (Wi-Fi or Ethernet); its address is the jaccl coordinator's.
	// netcfg never changes it.
	LAN         *Addressed `json:"lan,omitempty"`
	Thunderbolt []Port     `json:"thunderbolt"`
	// Other interfaces with addresses (VPN utun, Tailscale, docks): reserved.
	Other []Addressed `json:"other,omitempty"`
	// Routes seen on the node (netstat -rn), reserved like addresses.
	Routes []string `json:"routes,omitempty"`
	MacOS  string   `json:"macos,omitempty"`
	// RDMAEnabled is what `rdma_ctl status` said.
	RDMAEnabled bool `json:"rdma_enabled"`
	// Bridges as discovered. When nil, the macOS default is assumed: bridge0
	// ("Thunderbolt Bridge") holds every Thunderbolt port and nothing else.
	Bridges []Bridge `json:"bridges,omitempty"`
}

// Addressed is an interface with an IPv4 address in CIDR form.
type Addressed struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
}

// Port is a Thunderbolt network interface and its RDMA device.
type Port struct {
	Interface string `json:"interface"`
	RDMA      string `json:"rdma,omitempty"`
	// Address is a current address; reserved only when the port is not cabled,
	// since a cabled port's address is the plan's to set.
	Address string `json:"address,omitempty"`
}

// Bridge is a bridge interface and its members.
type Bridge struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Up      bool     `json:"up"`
}

// Cable joins two Thunderbolt ports, each written "node:interface".
type Cable struct {
	A string `json:"a"`
	B string `json:"b"`
}

// Endpoint is one end of a cable.
type Endpoint struct{ Node, Interface string }

func (e Endpoint) String() string { return e.Node + ":" + e.Interface }

func parseEndpoint(s string) (Endpoint, bool) {
	n, i, ok := strings.Cut(s, ":")
	return Endpoint{n, i}, ok && n != "" && i != ""
}

// DescriptionError is a cluster description that does not hold together;
// Field names the offending JSON field ("nodes[1].lan.address").
type DescriptionError struct {
	Field string
	Msg   string
}

func (e *DescriptionError) Error() string {
	return fmt.Sprintf("netcfg: cluster description: %s: %s", e.Field, e.Msg)
}

// ReadCluster parses and validates a JSON cluster description strictly:
// unknown fields, trailing data and every inconsistency are errors.
func ReadCluster(r io.Reader) (*Cluster, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var c Cluster
	if err := dec.Decode(&c); err != nil {
		return nil, &DescriptionError{Field: "(json)", Msg: err.Error()}
	}
	if dec.More() {
		return nil, &DescriptionError{Field: "(json)", Msg: "trailing data after the description"}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseCluster is ReadCluster over a byte slice.
func ParseCluster(b []byte) (*Cluster, error) { return ReadCluster(bytes.NewReader(b)) }

func parseV4Prefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%q is not an address in CIDR form (like 192.168.0.105/24)", s)
	}
	if !p.Addr().Is4() {
		return p, fmt.Errorf("%q is not IPv4", s)
	}
	return p, nil
}

// Validate checks the description: unique names, valid CIDRs, cables
// between known Thunderbolt interfaces of two different nodes, no interface
// cabled twice.
func (c *Cluster) Validate() error {
	if len(c.Nodes) == 0 {
		return &DescriptionError{Field: "nodes", Msg: "no nodes"}
	}
	tb := map[Endpoint]bool{}
	names := map[string]bool{}
	for i, n := range c.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		if n.Name == "" || strings.ContainsAny(n.Name, ": \t") {
			return &DescriptionError{Field: f + ".name", Msg: fmt.Sprintf("%q is not a usable node name", n.Name)}
		}
		if names[n.Name] {
			return &DescriptionError{Field: f + ".name", Msg: fmt.Sprintf("node %q named twice", n.Name)}
		}
		names[n.Name] = true
		if n.LAN != nil {
			if n.LAN.Interface == "" {
				return &DescriptionError{Field: f + ".lan.interface", Msg: "empty"}
			}
			if _, err := parseV4Prefix(n.LAN.Address); err != nil {
				return &DescriptionError{Field: f + ".lan.address", Msg: err.Error()}
			}
		}
		for j, p := range n.Thunderbolt {
			pf := fmt.Sprintf("%s.thunderbolt[%d]", f, j)
			if p.Interface == "" {
				return &DescriptionError{Field: pf + ".interface", Msg: "empty"}
			}
			if n.LAN != nil && p.Interface == n.LAN.Interface {
				return &DescriptionError{Field: pf + ".interface", Msg: fmt.Sprintf("%s is the LAN interface", p.Interface)}
			}
			ep := Endpoint{n.Name, p.Interface}
			if tb[ep] {
				return &DescriptionError{Field: pf + ".interface", Msg: fmt.Sprintf("%s listed twice", p.Interface)}
			}
			tb[ep] = true
			if p.RDMA != "" && !strings.HasPrefix(p.RDMA, "rdma_") {
				return &DescriptionError{Field: pf + ".rdma", Msg: fmt.Sprintf("%q is not an rdma_ device name", p.RDMA)}
			}
			if p.Address != "" {
				if _, err := parseV4Prefix(p.Address); err != nil {
					return &DescriptionError{Field: pf + ".address", Msg: err.Error()}
				}
			}
		}
		for j, o := range n.Other {
			if _, err := parseV4Prefix(o.Address); err != nil {
				return &DescriptionError{Field: fmt.Sprintf("%s.other[%d].address", f, j), Msg: err.Error()}
			}
			if tb[Endpoint{n.Name, o.Interface}] {
				return &DescriptionError{Field: fmt.Sprintf("%s.other[%d].interface", f, j), Msg: fmt.Sprintf("%s is a Thunderbolt interface", o.Interface)}
			}
		}
		for j, r := range n.Routes {
			if _, err := parseV4Prefix(r); err != nil {
				return &DescriptionError{Field: fmt.Sprintf("%s.routes[%d]", f, j), Msg: err.Error()}
			}
		}
		if n.MacOS != "" {
			if _, err := parseVersion(n.MacOS); err != nil {
				return &DescriptionError{Field: f + ".macos", Msg: err.Error()}
			}
		}
		for j, b := range n.Bridges {
			if b.Name == "" {
				return &DescriptionError{Field: fmt.Sprintf("%s.bridges[%d].name", f, j), Msg: "empty"}
			}
		}
	}
	cabled := map[Endpoint]string{}
	for i, cb := range c.Cables {
		for _, side := range []struct{ name, v string }{{"a", cb.A}, {"b", cb.B}} {
			field := fmt.Sprintf("cables[%d].%s", i, side.name)
			ep, ok := parseEndpoint(side.v)
			if !ok {
				return &DescriptionError{Field: field, Msg: fmt.Sprintf("%q is not node:interface", side.v)}
			}
			if !names[ep.Node] {
				return &DescriptionError{Field: field, Msg: fmt.Sprintf("unknown node %q", ep.Node)}
			}
			if !tb[ep] {
				return &DescriptionError{Field: field, Msg: fmt.Sprintf("%s is not a Thunderbolt interface of %s", ep.Interface, ep.Node)}
			}
			if prev, dup := cabled[ep]; dup {
				return &DescriptionError{Field: field, Msg: fmt.Sprintf("%s is already cabled in %s", ep, prev)}
			}
			cabled[ep] = fmt.Sprintf("cables[%d]", i)
		}
		a, _ := parseEndpoint(cb.A)
		b, _ := parseEndpoint(cb.B)
		if a.Node == b.Node {
			return &DescriptionError{Field: fmt.Sprintf("cables[%d]", i), Msg: fmt.Sprintf("both ends on node %s", a.Node)}
		}
	}
	return nil
}

func (c *Cluster) node(name string) *Node {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return &c.Nodes[i]
		}
	}
	return nil
}

func (c *Cluster) nodeIndex(name string) int {
	for i := range c.Nodes {
		if c.Nodes[i].Name == name {
			return i
		}
	}
	return -1
}

func (n *Node) port(iface string) *Port {
	for i := range n.Thunderbolt {
		if n.Thunderbolt[i].Interface == iface {
			return &n.Thunderbolt[i]
		}
	}
	return nil
}

func (n *Node) sshHost() string {
	if n.SSH != "" {
		return n.SSH
	}
	return n.Name
}

// version is a dotted macOS version, compared numerically.
type version []int

func parseVersion(s string) (version, error) {
	var v version
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a version like 26.3", s)
		}
		v = append(v, n)
	}
	return v, nil
}

func (v version) less(w version) bool {
	for i := 0; i < len(v) || i < len(w); i++ {
		a, b := 0, 0
		if i < len(v) {
			a = v[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return a < b
		}
	}
	return false
}

// ifaceLess orders interface names naturally: en3 < en5 < en10.
func ifaceLess(a, b string) bool {
	pa, na := splitIface(a)
	pb, nb := splitIface(b)
	if pa != pb {
		return pa < pb
	}
	if na != nb {
		return na < nb
	}
	return a < b
}

func splitIface(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}

// sortedCables returns the cables with each end ordered by node position
// (the earlier node is A) and the cables sorted by A's node, A's interface,
// then B: the stable order in which cables take subnets from the pool.
func (c *Cluster) sortedCables() [][2]Endpoint {
	var out [][2]Endpoint
	for _, cb := range c.Cables {
		a, _ := parseEndpoint(cb.A)
		b, _ := parseEndpoint(cb.B)
		if c.nodeIndex(b.Node) < c.nodeIndex(a.Node) {
			a, b = b, a
		}
		out = append(out, [2]Endpoint{a, b})
	}
	sort.SliceStable(out, func(i, j int) bool {
		x, y := out[i], out[j]
		if xi, yi := c.nodeIndex(x[0].Node), c.nodeIndex(y[0].Node); xi != yi {
			return xi < yi
		}
		if x[0].Interface != y[0].Interface {
			return ifaceLess(x[0].Interface, y[0].Interface)
		}
		if xi, yi := c.nodeIndex(x[1].Node), c.nodeIndex(y[1].Node); xi != yi {
			return xi < yi
		}
		return ifaceLess(x[1].Interface, y[1].Interface)
	})
	return out
}

// ErrNotMacOS is returned by local discovery on another system.
var ErrNotMacOS = errors.New("netcfg: discovery needs macOS (system_profiler, networksetup, rdma_ctl)")
