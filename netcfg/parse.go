package netcfg

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// ThunderboltPort is one Thunderbolt bus of a node as system_profiler reports
// it: the port's own domain UUID, the receptacle number that names its
// hardware port ("Thunderbolt 1"), and the domain UUIDs of the hosts found
// behind it, through hubs included.
type ThunderboltPort struct {
	Receptacle string   `json:"receptacle"`
	Domain     string   `json:"domain"`
	Peers      []string `json:"peers,omitempty"`
}

// ParseThunderbolt reads `system_profiler SPThunderboltDataType -json`.
// Each top-level entry is a bus of this Mac with its domain_uuid_key and
// receptacle_1_tag.receptacle_id_key; the connected devices are in _items,
// each with route_string_key and switch_uid_key, and a hub's own devices are
// in its _items again. A device carrying a domain_uuid_key is another host.
func ParseThunderbolt(b []byte) ([]ThunderboltPort, error) {
	var doc struct {
		Buses []tbItem `json:"SPThunderboltDataType"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, &ParseError{Command: "system_profiler", Msg: err.Error()}
	}
	var ports []ThunderboltPort
	for i, bus := range doc.Buses {
		if bus.Domain == "" {
			return nil, &ParseError{Command: "system_profiler", Msg: fmt.Sprintf("bus %d (%q) has no domain_uuid_key", i, bus.Name)}
		}
		p := ThunderboltPort{Domain: bus.Domain}
		for k, raw := range bus.Extra {
			if strings.HasPrefix(k, "receptacle_") && strings.HasSuffix(k, "_tag") {
				var tag struct {
					ID string `json:"receptacle_id_key"`
				}
				if json.Unmarshal(raw, &tag) == nil && tag.ID != "" {
					p.Receptacle = tag.ID
				}
			}
		}
		var walk func(items []tbItem)
		walk = func(items []tbItem) {
			for _, it := range items {
				if it.Domain != "" && it.Domain != bus.Domain {
					p.Peers = append(p.Peers, it.Domain)
				}
				walk(it.Items)
			}
		}
		walk(bus.Items)
		ports = append(ports, p)
	}
	return ports, nil
}

type tbItem struct {
	Name   string
	Domain string
	Items  []tbItem
	Extra  map[string]json.RawMessage
}

func (t *tbItem) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &t.Extra); err != nil {
		return err
	}
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(t.Extra[k], &s)
		return s
	}
	t.Name, t.Domain = str("_name"), str("domain_uuid_key")
	if raw, ok := t.Extra["_items"]; ok {
		return json.Unmarshal(raw, &t.Items)
	}
	return nil
}

// ParseHardwarePorts reads `networksetup -listallhardwareports` into a map
// from the hardware port name ("Thunderbolt 1", "Wi-Fi") to its device ("en3").
func ParseHardwarePorts(b []byte) map[string]string {
	ports := map[string]string{}
	var port string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "Hardware Port:"); ok {
			port = strings.TrimSpace(v)
		} else if v, ok := strings.CutPrefix(line, "Device:"); ok && port != "" {
			ports[port] = strings.TrimSpace(v)
			port = ""
		}
	}
	return ports
}

// Interface is one network interface as `ifconfig -a` shows it.
type Interface struct {
	Name string `json:"name"`
	// Up is the UP flag; Active is "status: active" (a cable or link present).
	Up     bool           `json:"up"`
	Active bool           `json:"active"`
	Addrs  []netip.Prefix `json:"addrs,omitempty"`
	// Members are a bridge's member interfaces.
	Members []string `json:"members,omitempty"`
}

// ParseIfconfig reads `ifconfig -a`: interface headers at column 0,
// `inet A netmask 0xffffff00` (point-to-point `inet A --> B netmask ...`
// too), bridge `member: enX flags=...` lines and `status: active`.
func ParseIfconfig(b []byte) ([]Interface, error) {
	var out []Interface
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		raw := sc.Text()
		if raw == "" {
			continue
		}
		if raw[0] != ' ' && raw[0] != '\t' {
			name, rest, ok := strings.Cut(raw, ": flags=")
			if !ok {
				return nil, &ParseError{Command: "ifconfig", Msg: fmt.Sprintf("unexpected header %q", raw)}
			}
			flags := rest
			if i := strings.IndexByte(rest, '<'); i >= 0 {
				flags = rest[i+1:]
				if j := strings.IndexByte(flags, '>'); j >= 0 {
					flags = flags[:j]
				}
			}
			up := false
			for _, f := range strings.Split(flags, ",") {
				up = up || f == "UP"
			}
			out = append(out, Interface{Name: name, Up: up})
			continue
		}
		if len(out) == 0 {
			return nil, &ParseError{Command: "ifconfig", Msg: fmt.Sprintf("indented line before any interface: %q", raw)}
		}
		cur := &out[len(out)-1]
		f := strings.Fields(raw)
		switch {
		case f[0] == "inet":
			p, err := parseInet(f)
			if err != nil {
				return nil, &ParseError{Command: "ifconfig", Msg: fmt.Sprintf("%s: %v", cur.Name, err)}
			}
			cur.Addrs = append(cur.Addrs, p)
		case f[0] == "member:" && len(f) > 1:
			cur.Members = append(cur.Members, f[1])
		case f[0] == "status:" && len(f) > 1:
			cur.Active = f[1] == "active"
		}
	}
	return out, nil
}

func parseInet(f []string) (netip.Prefix, error) {
	if len(f) < 2 {
		return netip.Prefix{}, fmt.Errorf("inet line without address")
	}
	addr, err := netip.ParseAddr(f[1])
	if err != nil {
		return netip.Prefix{}, err
	}
	bits := 32
	for i := 2; i+1 < len(f); i++ {
		if f[i] == "netmask" {
			m, err := strconv.ParseUint(strings.TrimPrefix(f[i+1], "0x"), 16, 32)
			if err != nil {
				return netip.Prefix{}, fmt.Errorf("netmask %q: %v", f[i+1], err)
			}
			bits = maskBits(uint32(m))
			if bits < 0 {
				return netip.Prefix{}, fmt.Errorf("netmask %q is not contiguous", f[i+1])
			}
		}
	}
	return netip.PrefixFrom(addr, bits), nil
}

func maskBits(m uint32) int {
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	if m != 0 {
		return -1
	}
	return n
}

// Route is one IPv4 entry of `netstat -rn`.
type Route struct {
	Dest    netip.Prefix `json:"dest"`
	Gateway string       `json:"gateway"`
	Netif   string       `json:"netif"`
}

// ParseNetstat reads the "Internet:" section of `netstat -rn`, returning the
// routes and the default gateway. BSD abbreviates destinations: "10/8",
// "192.168.0" (three octets, so /24), "127" (/8), and a full address without
// a length is a host (/32).
func ParseNetstat(b []byte) (routes []Route, defaultGateway string, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	inet := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "Internet:":
			inet = true
			continue
		case strings.HasPrefix(line, "Internet6:"):
			inet = false
			continue
		case !inet || line == "" || strings.HasPrefix(line, "Destination"):
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		if f[0] == "default" {
			if defaultGateway == "" {
				defaultGateway = f[1]
			}
			continue
		}
		dest, err := parseBSDDest(f[0])
		if err != nil {
			return nil, "", &ParseError{Command: "netstat", Msg: fmt.Sprintf("destination %q: %v", f[0], err)}
		}
		routes = append(routes, Route{Dest: dest, Gateway: f[1], Netif: f[3]})
	}
	return routes, defaultGateway, nil
}

func parseBSDDest(s string) (netip.Prefix, error) {
	s, _, _ = strings.Cut(s, "%")
	addr, length, hasLen := strings.Cut(s, "/")
	octets := strings.Split(addr, ".")
	if len(octets) > 4 {
		return netip.Prefix{}, fmt.Errorf("too many octets")
	}
	bits := 8 * len(octets)
	for len(octets) < 4 {
		octets = append(octets, "0")
	}
	if hasLen {
		n, err := strconv.Atoi(length)
		if err != nil || n < 0 || n > 32 {
			return netip.Prefix{}, fmt.Errorf("bad prefix length %q", length)
		}
		bits = n
	}
	a, err := netip.ParseAddr(strings.Join(octets, "."))
	if err != nil {
		return netip.Prefix{}, err
	}
	return a.Prefix(bits)
}

// ParseIBVDevices reads `ibv_devices`: a header, a dashed rule, then one
// device per line ("rdma_en3   0000000000000000"). It returns the sorted
// device names.
func ParseIBVDevices(b []byte) []string {
	var devs []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "device" || strings.HasPrefix(f[0], "-") {
			continue
		}
		devs = append(devs, f[0])
	}
	sort.Strings(devs)
	return devs
}

// ParseRDMAStatus reads `rdma_ctl status`, which prints "enabled" or
// "disabled".
func ParseRDMAStatus(b []byte) (bool, error) {
	s := strings.ToLower(strings.TrimSpace(string(b)))
	switch {
	case strings.Contains(s, "disabled"):
		return false, nil
	case strings.Contains(s, "enabled"):
		return true, nil
	default:
		return false, &ParseError{Command: "rdma_ctl", Msg: fmt.Sprintf("status %q says neither enabled nor disabled", s)}
	}
}

// ParseSwVers reads the ProductVersion line of `sw_vers`.
func ParseSwVers(b []byte) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ProductVersion:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", &ParseError{Command: "sw_vers", Msg: "no ProductVersion line"}
}

// ParseError is command output netcfg could not read.
type ParseError struct {
	Node    string
	Command string
	Msg     string
}

func (e *ParseError) Error() string {
	if e.Node != "" {
		return fmt.Sprintf("netcfg: reading %s output of %s: %s", e.Command, e.Node, e.Msg)
	}
	return fmt.Sprintf("netcfg: reading %s output: %s", e.Command, e.Msg)
}
