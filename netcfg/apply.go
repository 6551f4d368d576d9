package netcfg

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
)

// ApplyOptions tune Apply.
type ApplyOptions struct {
	// Apply runs the commands; without it Apply only reports what it would run.
	Apply bool
	// Nodes limits the run to these nodes; all of the plan's when empty.
	Nodes  []string
	Logger *slog.Logger
}

// ApplyResult is what Apply found and did.
type ApplyResult struct {
	// Snapshot is the state before any change, for Rollback.
	Snapshot Snapshot
	// Commands are the commands each node needed (run, when Apply was set).
	Commands map[string][]Command
	// Notes are steps skipped on purpose, with the reason.
	Notes []string
}

// Snapshot is the interfaces of each node before a change, and which of
// them are Thunderbolt ports: all Rollback may touch.
type Snapshot struct {
	Nodes []NodeSnapshot `json:"nodes"`
}

// NodeSnapshot is one node's part of a Snapshot.
type NodeSnapshot struct {
	Name        string      `json:"name"`
	Thunderbolt []string    `json:"thunderbolt"`
	Protected   []string    `json:"protected,omitempty"`
	Interfaces  []Interface `json:"interfaces"`
}

func findIface(ifs []Interface, name string) *Interface {
	for i := range ifs {
		if ifs[i].Name == name {
			return &ifs[i]
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// NeededSteps compares a node's steps with its live interfaces and returns
// the ones still to do: a converged node needs none. A bridge is only taken
// down if every member it has now is a Thunderbolt port.
func NeededSteps(p *Plan, node string, live []Interface) (steps []Step, notes []string, err error) {
	for _, s := range p.NodeSteps(node) {
		switch s.Kind {
		case StepBridgeDown:
			br := findIface(live, s.Bridge)
			if br == nil || !br.Up {
				continue
			}
			var foreign []string
			for _, m := range br.Members {
				if !contains(p.Thunderbolt[node], m) {
					foreign = append(foreign, m)
				}
			}
			if len(foreign) > 0 {
				notes = append(notes, fmt.Sprintf("%s: leaving %s up: it also bridges %s", node, s.Bridge, strings.Join(foreign, ", ")))
				continue
			}
		case StepBridgeRemove:
			br := findIface(live, s.Bridge)
			if br == nil || !contains(br.Members, s.Interface) {
				continue
			}
		case StepSetAddress:
			in := findIface(live, s.Interface)
			if in == nil {
				return nil, nil, fmt.Errorf("netcfg: %s has no interface %s (is the Thunderbolt port present?)", node, s.Interface)
			}
			has := false
			for _, a := range in.Addrs {
				has = has || a == s.Address
			}
			if has && in.Up {
				continue
			}
		}
		steps = append(steps, s)
	}
	return steps, notes, nil
}

func (o ApplyOptions) nodes(p *Plan) []string {
	if len(o.Nodes) > 0 {
		return o.Nodes
	}
	return p.Nodes
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// Apply brings the nodes to the plan through r, idempotently: it reads each
// node's interfaces first, snapshots them, and runs only the steps still
// needed. Without opts.Apply nothing is changed.
func Apply(ctx context.Context, r Runner, p *Plan, opts ApplyOptions) (*ApplyResult, error) {
	if err := CheckSafe(p); err != nil {
		return nil, err
	}
	log := logger(opts.Logger)
	res := &ApplyResult{Commands: map[string][]Command{}}
	type todo struct {
		node  string
		steps []Step
	}
	var work []todo
	for _, n := range opts.nodes(p) {
		if !contains(p.Nodes, n) {
			return nil, fmt.Errorf("netcfg: node %q is not in the plan", n)
		}
		live, err := ReadInterfaces(ctx, r, n)
		if err != nil {
			return nil, err
		}
		res.Snapshot.Nodes = append(res.Snapshot.Nodes, NodeSnapshot{Name: n, Thunderbolt: p.Thunderbolt[n], Protected: p.Protected[n], Interfaces: live})
		steps, notes, err := NeededSteps(p, n, live)
		if err != nil {
			return nil, err
		}
		res.Notes = append(res.Notes, notes...)
		for _, s := range steps {
			res.Commands[n] = append(res.Commands[n], s.Command)
		}
		work = append(work, todo{n, steps})
	}
	if !opts.Apply {
		return res, nil
	}
	for _, w := range work {
		for _, s := range w.steps {
			log.Info("netcfg: running", "node", w.node, "command", s.Command.String())
			if _, err := r.Run(ctx, w.node, s.Command.Program, s.Command.Args...); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// RollbackCommands returns, per node, the commands that undo what changed
// since snap on the Thunderbolt interfaces: addresses added are removed,
// bridge members removed are re-added, a bridge that was up is brought up.
// Routes are never touched.
func RollbackCommands(snap Snapshot, live map[string][]Interface) (map[string][]Command, error) {
	out := map[string][]Command{}
	for _, ns := range snap.Nodes {
		now, ok := live[ns.Name]
		if !ok {
			continue
		}
		var cmds []Command
		tbs := append([]string(nil), ns.Thunderbolt...)
		sort.Slice(tbs, func(i, j int) bool { return ifaceLess(tbs[i], tbs[j]) })
		for _, tb := range tbs {
			cur := findIface(now, tb)
			if cur == nil {
				continue
			}
			var before []netip.Prefix
			if old := findIface(ns.Interfaces, tb); old != nil {
				before = old.Addrs
			}
			for _, a := range cur.Addrs {
				if !containsPrefix(before, a) {
					cmds = append(cmds, Command{"ifconfig", []string{tb, "inet", a.Addr().String(), "-alias"}})
				}
			}
		}
		for _, old := range ns.Interfaces {
			if len(old.Members) == 0 && !strings.HasPrefix(old.Name, "bridge") {
				continue
			}
			cur := findIface(now, old.Name)
			if cur == nil {
				continue
			}
			for _, m := range old.Members {
				if contains(tbs, m) && !contains(cur.Members, m) {
					cmds = append(cmds, Command{"ifconfig", []string{old.Name, "addm", m}})
				}
			}
			if old.Up && !cur.Up {
				cmds = append(cmds, Command{"ifconfig", []string{old.Name, "up"}})
			}
		}
		for _, c := range cmds {
			if err := CheckCommand(ns.Name, c, ns.Thunderbolt, ns.Protected); err != nil {
				return nil, err
			}
		}
		if len(cmds) > 0 {
			out[ns.Name] = cmds
		}
	}
	return out, nil
}

func containsPrefix(list []netip.Prefix, p netip.Prefix) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// Rollback reads each snapshotted node's interfaces and undoes the changes
// (see RollbackCommands), running them only when apply is set. It returns
// the commands per node.
func Rollback(ctx context.Context, r Runner, snap Snapshot, apply bool) (map[string][]Command, error) {
	live := map[string][]Interface{}
	for _, ns := range snap.Nodes {
		ifs, err := ReadInterfaces(ctx, r, ns.Name)
		if err != nil {
			return nil, err
		}
		live[ns.Name] = ifs
	}
	cmds, err := RollbackCommands(snap, live)
	if err != nil || !apply {
		return cmds, err
	}
	for _, ns := range snap.Nodes {
		for _, c := range cmds[ns.Name] {
			if _, err := r.Run(ctx, ns.Name, c.Program, c.Args...); err != nil {
				return cmds, err
			}
		}
	}
	return cmds, nil
}

// Finding is one verification result.
type Finding struct {
	Node   string `json:"node"`
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Verify checks the plan on the live nodes: every planned address present,
// no Thunderbolt interface left in a bridge, each /30 peer answering a
// ping, and (for jaccl) every cabled port's RDMA device present.
func Verify(ctx context.Context, r Runner, p *Plan) ([]Finding, error) {
	var fs []Finding
	add := func(node, check string, ok bool, format string, args ...any) {
		fs = append(fs, Finding{Node: node, Check: check, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	live := map[string][]Interface{}
	devs := map[string][]string{}
	for _, n := range p.Nodes {
		ifs, err := ReadInterfaces(ctx, r, n)
		if err != nil {
			return nil, err
		}
		live[n] = ifs
		if p.Backend != BackendRing {
			out, err := r.Run(ctx, n, "ibv_devices")
			if err == nil {
				devs[n] = ParseIBVDevices(out)
			}
		}
		for _, in := range ifs {
			for _, m := range in.Members {
				if contains(p.Thunderbolt[n], m) {
					add(n, "bridge", false, "%s is still a member of %s: run `sudo ifconfig %s deletem %s`", m, in.Name, in.Name, m)
				}
			}
		}
	}
	for _, l := range p.Links {
		ends := []struct {
			me, peer     Endpoint
			mine, theirs netip.Prefix
		}{{l.A, l.B, l.AddrA, l.AddrB}, {l.B, l.A, l.AddrB, l.AddrA}}
		for _, e := range ends {
			in := findIface(live[e.me.Node], e.me.Interface)
			ok := in != nil && containsPrefix(in.Addrs, e.mine)
			add(e.me.Node, "address", ok, "%s has %s: %v", e.me.Interface, e.mine, ok)
			_, err := r.Run(ctx, e.me.Node, "ping", "-c", "1", "-t", "2", e.theirs.Addr().String())
			if err != nil {
				add(e.me.Node, "ping", false, "%s (%s) does not answer from %s: %v", e.theirs.Addr(), e.peer, e.me.Interface, err)
			} else {
				add(e.me.Node, "ping", true, "%s (%s) answers from %s", e.theirs.Addr(), e.peer, e.me.Interface)
			}
			if p.Backend != BackendRing {
				dev := "rdma_" + e.me.Interface
				ok := contains(devs[e.me.Node], dev)
				add(e.me.Node, "rdma", ok, "%s present: %v", dev, ok)
			}
		}
	}
	return fs, nil
}
