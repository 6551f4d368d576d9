package netcfg

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// NodeState is everything discovery read from one node: the raw facts
// behind a Node description, and what Apply, Verify, Rollback and Diagnose
// compare against. A snapshot is a list of these, saved as JSON.
type NodeState struct {
	Name           string            `json:"name"`
	SSH            string            `json:"ssh,omitempty"`
	Interfaces     []Interface       `json:"interfaces"`
	Routes         []Route           `json:"routes,omitempty"`
	DefaultGateway string            `json:"default_gateway,omitempty"`
	HardwarePorts  map[string]string `json:"hardware_ports,omitempty"`
	Thunderbolt    []ThunderboltPort `json:"thunderbolt,omitempty"`
	RDMADevices    []string          `json:"rdma_devices,omitempty"`
	RDMAEnabled    bool              `json:"rdma_enabled"`
	MacOS          string            `json:"macos,omitempty"`
}

// Interface returns the named interface, or nil.
func (s *NodeState) Interface(name string) *Interface {
	for i := range s.Interfaces {
		if s.Interfaces[i].Name == name {
			return &s.Interfaces[i]
		}
	}
	return nil
}

// BridgeOf returns the bridge that has iface as a member, or "".
func (s *NodeState) BridgeOf(iface string) string {
	for _, in := range s.Interfaces {
		for _, m := range in.Members {
			if m == iface {
				return in.Name
			}
		}
	}
	return ""
}

// HasRDMADevice reports whether ibv_devices listed dev.
func (s *NodeState) HasRDMADevice(dev string) bool {
	for _, d := range s.RDMADevices {
		if d == dev {
			return true
		}
	}
	return false
}

// thunderboltInterfaces maps each "Thunderbolt N" hardware port's device to
// its receptacle number N.
func (s *NodeState) thunderboltInterfaces() map[string]string {
	out := map[string]string{}
	for port, dev := range s.HardwarePorts {
		if n, ok := strings.CutPrefix(port, "Thunderbolt "); ok && !strings.Contains(n, " ") {
			out[dev] = n
		}
	}
	return out
}

// ReadInterfaces runs `ifconfig -a` on node and parses it: the part of the
// state Apply and Reconcile need.
func ReadInterfaces(ctx context.Context, r Runner, node string) ([]Interface, error) {
	out, err := r.Run(ctx, node, "ifconfig", "-a")
	if err != nil {
		return nil, err
	}
	ifs, err := ParseIfconfig(out)
	if pe, ok := err.(*ParseError); ok {
		pe.Node = node
	}
	return ifs, err
}

// Discover reads one node's state through r.
func Discover(ctx context.Context, r Runner, node string) (*NodeState, error) {
	s := &NodeState{Name: node}
	run := func(name string, args ...string) ([]byte, error) { return r.Run(ctx, node, name, args...) }
	withNode := func(err error) error {
		if pe, ok := err.(*ParseError); ok {
			pe.Node = node
		}
		return err
	}

	out, err := run("system_profiler", "SPThunderboltDataType", "-json")
	if err != nil {
		return nil, err
	}
	if s.Thunderbolt, err = ParseThunderbolt(out); err != nil {
		return nil, withNode(err)
	}
	if out, err = run("networksetup", "-listallhardwareports"); err != nil {
		return nil, err
	}
	s.HardwarePorts = ParseHardwarePorts(out)
	if s.Interfaces, err = ReadInterfaces(ctx, r, node); err != nil {
		return nil, err
	}
	if out, err = run("netstat", "-rn"); err != nil {
		return nil, err
	}
	if s.Routes, s.DefaultGateway, err = ParseNetstat(out); err != nil {
		return nil, withNode(err)
	}
	// ibv_devices fails when RDMA is off; that is a finding, not a failure.
	if out, err = run("ibv_devices"); err == nil {
		s.RDMADevices = ParseIBVDevices(out)
	}
	if out, err = run("rdma_ctl", "status"); err != nil {
		return nil, err
	}
	if s.RDMAEnabled, err = ParseRDMAStatus(out); err != nil {
		return nil, withNode(err)
	}
	if out, err = run("sw_vers"); err != nil {
		return nil, err
	}
	if s.MacOS, err = ParseSwVers(out); err != nil {
		return nil, withNode(err)
	}
	return s, nil
}

// DiscoverCluster discovers every node and describes the cluster they form.
// ssh maps node names to ssh destinations written into the description.
func DiscoverCluster(ctx context.Context, r Runner, nodes []string, ssh map[string]string) (*Cluster, []*NodeState, error) {
	var states []*NodeState
	for _, n := range nodes {
		s, err := Discover(ctx, r, n)
		if err != nil {
			return nil, nil, err
		}
		s.SSH = ssh[n]
		states = append(states, s)
	}
	c, err := Describe(states)
	return c, states, err
}

// Describe turns discovered states into a cluster description. Cables are
// found by domain UUID: a port whose peer is another node's port domain is
// one end of a cable, whether the peer is plugged in directly or behind a
// hub. A port seeing several hosts through a hub is refused, since a /30
// joins exactly two.
func Describe(states []*NodeState) (*Cluster, error) {
	type owner struct {
		node  string
		iface string
	}
	byDomain := map[string]owner{}
	c := &Cluster{}
	for _, s := range states {
		tbIfaces := s.thunderboltInterfaces()
		recToIface := map[string]string{}
		for dev, rec := range tbIfaces {
			recToIface[rec] = dev
		}
		for _, p := range s.Thunderbolt {
			if dev, ok := recToIface[p.Receptacle]; ok {
				byDomain[p.Domain] = owner{s.Name, dev}
			}
		}
		n := Node{Name: s.Name, SSH: s.SSH, RDMAEnabled: s.RDMAEnabled, MacOS: s.MacOS, Bridges: []Bridge{}}
		lanIface := ""
		if gw, err := netip.ParseAddr(s.DefaultGateway); err == nil {
			for _, in := range s.Interfaces {
				for _, a := range in.Addrs {
					if a.Masked().Contains(gw) && lanIface == "" {
						lanIface = in.Name
						n.LAN = &Addressed{Interface: in.Name, Address: a.String()}
					}
				}
			}
		}
		var devs []string
		for dev := range tbIfaces {
			devs = append(devs, dev)
		}
		sort.Slice(devs, func(i, j int) bool { return ifaceLess(devs[i], devs[j]) })
		isTB := map[string]bool{}
		for _, dev := range devs {
			isTB[dev] = true
			p := Port{Interface: dev}
			if s.HasRDMADevice("rdma_" + dev) {
				p.RDMA = "rdma_" + dev
			}
			if in := s.Interface(dev); in != nil && len(in.Addrs) > 0 {
				p.Address = in.Addrs[0].String()
			}
			n.Thunderbolt = append(n.Thunderbolt, p)
		}
		for _, in := range s.Interfaces {
			if len(in.Members) > 0 || strings.HasPrefix(in.Name, "bridge") {
				n.Bridges = append(n.Bridges, Bridge{Name: in.Name, Members: append([]string{}, in.Members...), Up: in.Up})
			}
			if in.Name == lanIface || isTB[in.Name] || strings.HasPrefix(in.Name, "lo") {
				continue
			}
			for _, a := range in.Addrs {
				n.Other = append(n.Other, Addressed{Interface: in.Name, Address: a.String()})
			}
		}
		seen := map[string]bool{}
		for _, r := range s.Routes {
			// Routes through the Thunderbolt ports are the plan's own (or
			// about to be replaced); loopback routes never collide.
			if isTB[r.Netif] || strings.HasPrefix(r.Netif, "lo") {
				continue
			}
			k := r.Dest.Masked().String()
			if !seen[k] {
				seen[k] = true
				n.Routes = append(n.Routes, k)
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	type key struct{ a, b Endpoint }
	have := map[key]bool{}
	for _, s := range states {
		recToIface := map[string]string{}
		for dev, rec := range s.thunderboltInterfaces() {
			recToIface[rec] = dev
		}
		for _, p := range s.Thunderbolt {
			dev, ok := recToIface[p.Receptacle]
			if !ok {
				continue
			}
			var peers []owner
			for _, d := range p.Peers {
				if o, ok := byDomain[d]; ok {
					peers = append(peers, o)
				}
			}
			if len(peers) > 1 {
				return nil, &DescriptionError{Field: fmt.Sprintf("%s:%s", s.Name, dev), Msg: fmt.Sprintf("%d hosts behind one port (through a hub); a point-to-point /30 needs exactly one", len(peers))}
			}
			if len(peers) == 0 {
				continue
			}
			a, b := Endpoint{s.Name, dev}, Endpoint{peers[0].node, peers[0].iface}
			if have[key{a, b}] || have[key{b, a}] {
				continue
			}
			have[key{a, b}] = true
			c.Cables = append(c.Cables, Cable{A: a.String(), B: b.String()})
		}
	}
	cabs := c.sortedCables()
	c.Cables = c.Cables[:0]
	for _, cb := range cabs {
		c.Cables = append(c.Cables, Cable{A: cb[0].String(), B: cb[1].String()})
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}
