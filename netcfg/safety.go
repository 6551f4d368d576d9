package netcfg

import (
	"fmt"
	"net/netip"
	"strings"
)

// UnsafeError is a command the safety check refused. Every plan and every
// rollback passes the check before anything runs, so these commands can
// never reach a machine through netcfg.
type UnsafeError struct {
	Node    string
	Command Command
	Reason  string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("netcfg: refusing `%s` on %s: %s", e.Command, e.Node, e.Reason)
}

// forbiddenNetworksetup are the networksetup actions that took down the
// LAN in practice (network locations, service toggles).
var forbiddenNetworksetup = []string{"-setnetworkserviceenabled", "-switchtolocation", "-createlocation", "-deletelocation"}

// CheckSafe is the final check every plan passes through. It allows only
// the few ifconfig forms netcfg needs, on Thunderbolt interfaces and
// bridges of the node, and refuses everything else, by name:
//   - any `route` command: pointing the LAN gateway at a Thunderbolt
//     interface with `route change` panicked the kernel;
//   - networksetup location and service changes, which drop the Wi-Fi;
//   - any command naming a LAN or other protected interface;
//   - an address outside the plan's cable subnets.
func CheckSafe(p *Plan) error {
	allowed := map[Endpoint]netip.Prefix{}
	for _, l := range p.Links {
		allowed[l.A], allowed[l.B] = l.AddrA, l.AddrB
		if l.Subnet.Bits() != 30 || !l.Subnet.Contains(l.AddrA.Addr()) || !l.Subnet.Contains(l.AddrB.Addr()) || l.AddrA == l.AddrB {
			return &UnsafeError{Node: l.A.Node, Reason: fmt.Sprintf("cable %s <-> %s has malformed subnet %s (%s, %s)", l.A, l.B, l.Subnet, l.AddrA, l.AddrB)}
		}
	}
	for _, s := range p.Steps {
		if err := CheckCommand(s.Node, s.Command, p.Thunderbolt[s.Node], p.Protected[s.Node]); err != nil {
			return err
		}
		if s.Kind == StepSetAddress {
			want, ok := allowed[Endpoint{s.Node, s.Interface}]
			if !ok || want != s.Address || s.Command.Args[2] != want.String() {
				return &UnsafeError{Node: s.Node, Command: s.Command, Reason: fmt.Sprintf("address is not the one the plan gave %s:%s", s.Node, s.Interface)}
			}
		}
	}
	return nil
}

// CheckCommand checks one command for node against the allowed forms:
//
//	ifconfig bridgeN down|up
//	ifconfig bridgeN deletem|addm TB
//	ifconfig TB inet A.B.C.D/30 up
//	ifconfig TB inet A.B.C.D -alias
//
// where TB is one of thunderbolt and no argument names a protected interface.
func CheckCommand(node string, c Command, thunderbolt, protected []string) error {
	refuse := func(format string, args ...any) error {
		return &UnsafeError{Node: node, Command: c, Reason: fmt.Sprintf(format, args...)}
	}
	prog := c.Program
	if i := strings.LastIndexByte(prog, '/'); i >= 0 {
		prog = prog[i+1:]
	}
	switch prog {
	case "route":
		return refuse("route commands are never issued: a /30 makes its own route, and pointing the LAN gateway at Thunderbolt panicked the kernel")
	case "networksetup":
		for _, a := range c.Args {
			for _, f := range forbiddenNetworksetup {
				if strings.EqualFold(a, f) {
					return refuse("networksetup %s changes network locations or services and drops the LAN", f)
				}
			}
		}
		return refuse("networksetup never changes anything in a plan")
	case "ifconfig":
	default:
		return refuse("only ifconfig is allowed in a plan")
	}
	for _, a := range c.Args {
		for _, p := range protected {
			if a == p {
				return refuse("%s is a LAN or protected interface; netcfg never changes it", a)
			}
		}
	}
	isTB := func(s string) bool {
		for _, t := range thunderbolt {
			if s == t {
				return true
			}
		}
		return false
	}
	a := c.Args
	switch {
	case len(a) == 2 && strings.HasPrefix(a[0], "bridge") && (a[1] == "down" || a[1] == "up"):
		return nil
	case len(a) == 3 && strings.HasPrefix(a[0], "bridge") && (a[1] == "deletem" || a[1] == "addm"):
		if !isTB(a[2]) {
			return refuse("%s is not a Thunderbolt interface of %s", a[2], node)
		}
		return nil
	case len(a) == 4 && a[1] == "inet" && a[3] == "up":
		if !isTB(a[0]) {
			return refuse("%s is not a Thunderbolt interface of %s", a[0], node)
		}
		p, err := netip.ParsePrefix(a[2])
		if err != nil || !p.Addr().Is4() || p.Bits() != 30 {
			return refuse("address %q is not an IPv4 /30", a[2])
		}
		return nil
	case len(a) == 4 && a[1] == "inet" && a[3] == "-alias":
		if !isTB(a[0]) {
			return refuse("%s is not a Thunderbolt interface of %s", a[0], node)
		}
		if _, err := netip.ParseAddr(a[2]); err != nil {
			return refuse("address %q is not an IPv4 address", a[2])
		}
		return nil
	}
	return refuse("not one of the ifconfig forms a plan may use")
}
