package netcfg

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"time"
)

// Defaults for the boot-time LaunchDaemon.
const (
	DaemonLabel    = "com.mlxdist.tbnet"
	DaemonPlanPath = "/etc/mlxdist/tbnet-plan.json"
	DaemonBinary   = "/usr/local/bin/tbnet"
)

// Daemon describes the LaunchDaemon that re-applies a node's plan at boot
// (macOS forgets the addresses and rebuilds bridge0 on every boot). It runs
// once at load: no StartInterval, no KeepAlive, so nothing re-runs behind
// the operator's back the way periodic network resets do.
type Daemon struct {
	Label    string // DaemonLabel when empty
	Binary   string // DaemonBinary when empty
	PlanPath string // DaemonPlanPath when empty
	Node     string
}

func (d Daemon) withDefaults() Daemon {
	if d.Label == "" {
		d.Label = DaemonLabel
	}
	if d.Binary == "" {
		d.Binary = DaemonBinary
	}
	if d.PlanPath == "" {
		d.PlanPath = DaemonPlanPath
	}
	return d
}

// PlistPath is where the daemon's plist is installed.
func (d Daemon) PlistPath() string {
	return "/Library/LaunchDaemons/" + d.withDefaults().Label + ".plist"
}

// Plist returns the LaunchDaemon property list.
func (d Daemon) Plist() ([]byte, error) {
	d = d.withDefaults()
	if d.Node == "" {
		return nil, fmt.Errorf("netcfg: daemon needs a node name")
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	b.WriteString("<plist version=\"1.0\">\n<dict>\n")
	str := func(key, val string) {
		b.WriteString("\t<key>" + esc(key) + "</key>\n\t<string>" + esc(val) + "</string>\n")
	}
	str("Label", d.Label)
	b.WriteString("\t<key>ProgramArguments</key>\n\t<array>\n")
	for _, a := range []string{d.Binary, "reconcile", "--plan", d.PlanPath, "--node", d.Node} {
		b.WriteString("\t\t<string>" + esc(a) + "</string>\n")
	}
	b.WriteString("\t</array>\n")
	b.WriteString("\t<key>RunAtLoad</key>\n\t<true/>\n")
	str("StandardOutPath", "/var/log/"+d.Label+".log")
	str("StandardErrorPath", "/var/log/"+d.Label+".err.log")
	b.WriteString("</dict>\n</plist>\n")
	return b.Bytes(), nil
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// InstallCommands are the commands that install the daemon on its node,
// given the plist and plan already copied to plistSrc and planSrc there.
func (d Daemon) InstallCommands(plistSrc, planSrc string) []Command {
	d = d.withDefaults()
	return []Command{
		{"mkdir", []string{"-p", "/etc/mlxdist"}},
		{"install", []string{"-m", "0644", planSrc, d.PlanPath}},
		{"install", []string{"-m", "0644", "-o", "root", "-g", "wheel", plistSrc, d.PlistPath()}},
		{"launchctl", []string{"bootstrap", "system", d.PlistPath()}},
	}
}

// UninstallCommands remove the daemon.
func (d Daemon) UninstallCommands() []Command {
	d = d.withDefaults()
	return []Command{
		{"launchctl", []string{"bootout", "system/" + d.Label}},
		{"rm", []string{"-f", d.PlistPath()}},
	}
}

// ReconcileOptions tune Reconcile. Now and After default to the real clock;
// tests pass their own so nothing sleeps.
type ReconcileOptions struct {
	Timeout time.Duration // how long to wait for the interfaces; 2 minutes when zero
	Poll    time.Duration // 2 seconds when zero
	Now     func() time.Time
	After   func(time.Duration) <-chan time.Time
	Apply   bool
	ApplyOptions
}

// InterfaceTimeoutError is an interface that did not appear in time.
type InterfaceTimeoutError struct {
	Node      string
	Interface string
	Waited    time.Duration
}

func (e *InterfaceTimeoutError) Error() string {
	return fmt.Sprintf("netcfg: %s on %s did not appear within %s; is the Thunderbolt cable plugged in?", e.Interface, e.Node, e.Waited)
}

// WaitForInterfaces polls `ifconfig IFACE` through r until every interface
// exists or the timeout passes: at boot the Thunderbolt interfaces appear
// some seconds after launchd starts daemons, and a fixed sleep is either
// too short or needlessly long.
func WaitForInterfaces(ctx context.Context, r Runner, node string, ifaces []string, opts ReconcileOptions) error {
	now, after := opts.Now, opts.After
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	timeout, poll := opts.Timeout, opts.Poll
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	if poll == 0 {
		poll = 2 * time.Second
	}
	start := now()
	for _, iface := range ifaces {
		for {
			if _, err := r.Run(ctx, node, "ifconfig", iface); err == nil {
				break
			}
			if now().Sub(start) >= timeout {
				return &InterfaceTimeoutError{Node: node, Interface: iface, Waited: timeout}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-after(poll):
			}
		}
	}
	return nil
}

// Reconcile is what the LaunchDaemon runs at boot: wait for node's
// Thunderbolt interfaces, then apply node's part of the plan idempotently.
func Reconcile(ctx context.Context, r Runner, p *Plan, node string, opts ReconcileOptions) (*ApplyResult, error) {
	if err := CheckSafe(p); err != nil {
		return nil, err
	}
	if !contains(p.Nodes, node) {
		return nil, fmt.Errorf("netcfg: node %q is not in the plan (nodes: %v)", node, p.Nodes)
	}
	var ifaces []string
	for _, s := range p.NodeSteps(node) {
		if s.Kind == StepSetAddress {
			ifaces = append(ifaces, s.Interface)
		}
	}
	if err := WaitForInterfaces(ctx, r, node, ifaces, opts); err != nil {
		return nil, err
	}
	ao := opts.ApplyOptions
	ao.Nodes = []string{node}
	ao.Apply = opts.Apply
	return Apply(ctx, r, p, ao)
}
