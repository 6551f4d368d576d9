package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/mlxdist/mlxdist/internal/atomicfile"
)

// ErrHostfile is matched by every *HostfileError through errors.Is.
var ErrHostfile = errors.New("jaccl: invalid hostfile")

// HostfileError reports where a hostfile is wrong. Field names the JSON path
// of the offending value ("hosts[1].rdma[0]", "envs[2]", "backend"); File is
// the file's path when the hostfile was read with ReadHostfile.
type HostfileError struct {
	File   string
	Field  string
	Reason string
	Err    error // the underlying decoding error, if any
}

func (e *HostfileError) Error() string {
	var b strings.Builder
	b.WriteString("jaccl: hostfile")
	if e.File != "" {
		b.WriteString(" ")
		b.WriteString(e.File)
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

func (e *HostfileError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrHostfile) true for every hostfile error.
func (e *HostfileError) Is(target error) bool { return target == ErrHostfile }

// Hostfile is the cluster description that mlx.launch reads: which back-end
// to use, environment variables to export on every rank, and one Host per
// rank in rank order.
type Hostfile struct {
	Backend Backend // "" when the file does not name one
	Envs    []string
	Hosts   []Host
}

// Host is one rank's machine.
//
// SSH is the name to ssh to (127.0.0.1 and localhost run without ssh). IPs
// are the IPv4 addresses other ranks reach this one on: the ring back-end
// listens on them, and jaccl uses Hosts[0].IPs[0] as its coordinator, which
// must be the LAN address (Wi-Fi or Ethernet), never a Thunderbolt one. RDMA
// has one cell per rank: RDMA[j] lists the RDMA devices this host uses
// towards rank j, nil on the diagonal.
type Host struct {
	SSH  string
	IPs  []string
	RDMA []Devices
}

// Devices is one cell of the RDMA matrix: the devices ("rdma_en3") a host
// uses towards one peer. A nil Devices is JSON null (no link, or the host
// itself). In JSON a cell is a string or a list of strings; WriteHostfile
// writes a single device as a string, which every MLX version reads, and
// several as a list.
type Devices []string

// MarshalJSON writes nil as null, one device as a string and several as a
// list, as MLX's own configuration tool does.
func (d Devices) MarshalJSON() ([]byte, error) {
	switch len(d) {
	case 0:
		return []byte("null"), nil
	case 1:
		return json.Marshal(d[0])
	default:
		return json.Marshal([]string(d))
	}
}

// ReadHostfile reads and validates the hostfile at path.
func ReadHostfile(path string) (*Hostfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jaccl: %w", err)
	}
	hf, err := ParseHostfile(data)
	var he *HostfileError
	if errors.As(err, &he) {
		he.File = path
	}
	return hf, err
}

// ParseHostfile decodes a hostfile in mlx.launch's format: either an object
// {"backend": ..., "envs": [...], "hosts": [...]} or a bare list of hosts.
// Unknown fields are rejected rather than ignored, because a misspelt "rdma"
// would otherwise surface much later as an RDMA failure. The result is
// checked with Validate against the file's own back-end.
func ParseHostfile(data []byte) (*Hostfile, error) {
	hf, err := decodeHostfile(data)
	if err != nil {
		return nil, err
	}
	if err := hf.Validate(hf.Backend); err != nil {
		return nil, err
	}
	return hf, nil
}

// WriteHostfile writes hf to path as indented JSON in mlx.launch's format,
// atomically: a reader sees the old file or the whole new one.
func WriteHostfile(path string, hf *Hostfile) error {
	data, err := hf.MarshalJSON()
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, data, "", "    "); err != nil {
		return fmt.Errorf("jaccl: %w", err)
	}
	out.WriteByte('\n')
	if err := atomicfile.WriteFile(path, out.Bytes(), 0o666); err != nil {
		return fmt.Errorf("jaccl: %w", err)
	}
	return nil
}

// MarshalJSON writes the object form of the hostfile.
func (hf Hostfile) MarshalJSON() ([]byte, error) {
	type host struct {
		SSH  string    `json:"ssh"`
		IPs  []string  `json:"ips"`
		RDMA []Devices `json:"rdma,omitempty"`
	}
	type file struct {
		Backend string   `json:"backend,omitempty"`
		Envs    []string `json:"envs"`
		Hosts   []host   `json:"hosts"`
	}
	f := file{Backend: string(hf.Backend), Envs: hf.Envs, Hosts: make([]host, len(hf.Hosts))}
	if f.Envs == nil {
		f.Envs = []string{}
	}
	for i, h := range hf.Hosts {
		f.Hosts[i] = host{SSH: h.SSH, IPs: h.IPs, RDMA: h.RDMA}
		if f.Hosts[i].IPs == nil {
			f.Hosts[i].IPs = []string{}
		}
	}
	return json.Marshal(f)
}

// DeviceMatrix returns the N×N RDMA matrix, the content of the file that
// MLX_IBV_DEVICES names.
func (hf *Hostfile) DeviceMatrix() [][]Devices {
	m := make([][]Devices, len(hf.Hosts))
	for i, h := range hf.Hosts {
		m[i] = h.RDMA
	}
	return m
}

func decodeHostfile(data []byte) (*Hostfile, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, &HostfileError{Reason: "empty file"}
	}
	hf := &Hostfile{}
	var hostsRaw json.RawMessage
	switch data[0] {
	case '[':
		hostsRaw = data
	case '{':
		var top map[string]json.RawMessage
		if err := json.Unmarshal(data, &top); err != nil {
			return nil, syntaxError("", err)
		}
		for _, k := range sortedKeys(top) {
			switch k {
			case "backend":
				var s string
				if err := json.Unmarshal(top[k], &s); err != nil {
					return nil, &HostfileError{Field: "backend", Reason: "must be a string", Err: err}
				}
				if s != "" {
					b, err := ParseBackend(s)
					if err != nil {
						return nil, &HostfileError{Field: "backend", Reason: err.Error(), Err: err}
					}
					hf.Backend = b
				}
			case "envs":
				if err := json.Unmarshal(top[k], &hf.Envs); err != nil {
					return nil, &HostfileError{Field: "envs", Reason: `must be a list of "NAME=value" strings`, Err: err}
				}
				if len(hf.Envs) == 0 {
					hf.Envs = nil
				}
			case "hosts":
				hostsRaw = top[k]
			default:
				return nil, &HostfileError{Field: k, Reason: `unknown field (want "backend", "envs" or "hosts")`}
			}
		}
		if hostsRaw == nil {
			return nil, &HostfileError{Field: "hosts", Reason: "missing"}
		}
	default:
		return nil, &HostfileError{Reason: "not a JSON object or list"}
	}

	var hosts []json.RawMessage
	if err := json.Unmarshal(hostsRaw, &hosts); err != nil {
		return nil, syntaxError("hosts", err)
	}
	if hosts == nil {
		return nil, &HostfileError{Field: "hosts", Reason: "must be a list of hosts"}
	}
	for i, raw := range hosts {
		h, err := decodeHost(fmt.Sprintf("hosts[%d]", i), raw)
		if err != nil {
			return nil, err
		}
		hf.Hosts = append(hf.Hosts, h)
	}
	return hf, nil
}

func decodeHost(field string, raw json.RawMessage) (Host, error) {
	var h Host
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return h, &HostfileError{Field: field, Reason: `must be an object {"ssh": ..., "ips": [...], "rdma": [...]}`, Err: err}
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch k {
		case "ssh":
			if err := json.Unmarshal(v, &h.SSH); err != nil {
				return h, &HostfileError{Field: field + ".ssh", Reason: "must be a string", Err: err}
			}
		case "ips":
			if string(v) == "null" {
				continue
			}
			var ips []json.RawMessage
			if err := json.Unmarshal(v, &ips); err != nil {
				return h, &HostfileError{Field: field + ".ips", Reason: "must be a list of IPv4 addresses", Err: err}
			}
			for j, ip := range ips {
				var s string
				if err := json.Unmarshal(ip, &s); err != nil {
					return h, &HostfileError{Field: fmt.Sprintf("%s.ips[%d]", field, j), Reason: "must be a string", Err: err}
				}
				h.IPs = append(h.IPs, s)
			}
		case "rdma":
			if string(v) == "null" {
				continue
			}
			var cells []json.RawMessage
			if err := json.Unmarshal(v, &cells); err != nil {
				return h, &HostfileError{Field: field + ".rdma", Reason: "must be a list with one cell per host", Err: err}
			}
			h.RDMA = make([]Devices, len(cells))
			for j, c := range cells {
				d, err := decodeCell(c)
				if err != nil {
					return h, &HostfileError{Field: fmt.Sprintf("%s.rdma[%d]", field, j), Reason: "must be null, a device name or a list of device names", Err: err}
				}
				h.RDMA[j] = d
			}
		default:
			return h, &HostfileError{Field: field + "." + k, Reason: `unknown field (want "ssh", "ips" or "rdma")`}
		}
	}
	return h, nil
}

func decodeCell(c json.RawMessage) (Devices, error) {
	c = bytes.TrimSpace(c)
	switch {
	case string(c) == "null":
		return nil, nil
	case len(c) > 0 && c[0] == '"':
		var s string
		if err := json.Unmarshal(c, &s); err != nil {
			return nil, err
		}
		return Devices{s}, nil
	default:
		var l []string
		if err := json.Unmarshal(c, &l); err != nil {
			return nil, err
		}
		if len(l) == 0 {
			return nil, errors.New("empty device list")
		}
		return Devices(l), nil
	}
}

func syntaxError(field string, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &HostfileError{Field: field, Reason: fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err), Err: err}
	}
	return &HostfileError{Field: field, Reason: "invalid JSON: " + err.Error(), Err: err}
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var (
	envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// MLX names RDMA devices after their interface: rdma_en3, rdma_en5.
	deviceRe = regexp.MustCompile(`^rdma_[A-Za-z0-9_.-]+$`)
)

// Validate checks hf for back-end b (the hostfile's own back-end, or the one
// a launcher overrides it with; "" checks only what every back-end needs).
//
// Always: at least one host; every ssh set; every IP an IPv4 address; every
// env "NAME=value" with a valid name; an RDMA matrix, when present, that is
// N×N with null exactly on the diagonal and device names like "rdma_en3".
// Back-end specific: ring needs IPs on every host; jaccl needs a coordinator
// (Hosts[0].IPs[0]), a device for every pair of hosts (jaccl-ring: for ring
// neighbours only) and distinct hosts; nccl needs Hosts[0].IPs[0].
func (hf *Hostfile) Validate(b Backend) error {
	if len(hf.Hosts) == 0 {
		return &HostfileError{Field: "hosts", Reason: "no hosts"}
	}
	for i, e := range hf.Envs {
		name, _, ok := strings.Cut(e, "=")
		if !ok {
			return &HostfileError{Field: fmt.Sprintf("envs[%d]", i), Reason: fmt.Sprintf("%q is not NAME=value", e)}
		}
		if !envNameRe.MatchString(name) {
			return &HostfileError{Field: fmt.Sprintf("envs[%d]", i), Reason: fmt.Sprintf("%q is not a valid variable name", name)}
		}
	}
	n := len(hf.Hosts)
	haveRDMA := false
	for i, h := range hf.Hosts {
		field := fmt.Sprintf("hosts[%d]", i)
		if strings.TrimSpace(h.SSH) == "" {
			return &HostfileError{Field: field + ".ssh", Reason: "missing host name"}
		}
		for j, ip := range h.IPs {
			if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
				return &HostfileError{Field: fmt.Sprintf("%s.ips[%d]", field, j), Reason: fmt.Sprintf("%q is not an IPv4 address", ip)}
			}
		}
		if len(h.RDMA) == 0 {
			continue
		}
		haveRDMA = true
		if len(h.RDMA) != n {
			return &HostfileError{Field: field + ".rdma", Reason: fmt.Sprintf("has %d cells, want one per host (%d)", len(h.RDMA), n)}
		}
		for j, cell := range h.RDMA {
			cf := fmt.Sprintf("%s.rdma[%d]", field, j)
			if i == j && cell != nil {
				return &HostfileError{Field: cf, Reason: "must be null: a host has no RDMA link to itself"}
			}
			for k, d := range cell {
				if !deviceRe.MatchString(d) {
					f := cf
					if len(cell) > 1 {
						f = fmt.Sprintf("%s[%d]", cf, k)
					}
					return &HostfileError{Field: f, Reason: fmt.Sprintf("%q is not an RDMA device name like \"rdma_en3\" (see ibv_devices)", d)}
				}
			}
		}
	}
	if haveRDMA {
		for i, h := range hf.Hosts {
			if len(h.RDMA) == 0 {
				return &HostfileError{Field: fmt.Sprintf("hosts[%d].rdma", i), Reason: "missing while other hosts have one"}
			}
		}
	}

	switch b {
	case Ring:
		for i, h := range hf.Hosts {
			if len(h.IPs) == 0 {
				return &HostfileError{Field: fmt.Sprintf("hosts[%d].ips", i), Reason: "the ring back-end needs an IPv4 address for every host"}
			}
		}
	case NCCL:
		if len(hf.Hosts[0].IPs) == 0 {
			return &HostfileError{Field: "hosts[0].ips", Reason: "nccl needs rank 0's IPv4 address, reachable from every rank"}
		}
	case JACCL, JACCLRing:
		if len(hf.Hosts[0].IPs) == 0 {
			return &HostfileError{Field: "hosts[0].ips", Reason: "jaccl needs rank 0's LAN IPv4 address (Wi-Fi or Ethernet, not Thunderbolt) as its coordinator"}
		}
		if n > 1 && !haveRDMA {
			return &HostfileError{Field: "hosts[0].rdma", Reason: "jaccl needs the RDMA device matrix (\"rdma\" on every host)"}
		}
		for i, h := range hf.Hosts {
			for j := range h.RDMA {
				if i == j || h.RDMA[j] != nil {
					continue
				}
				neighbour := j == (i+1)%n || j == (i+n-1)%n
				if b == JACCL || neighbour {
					return &HostfileError{Field: fmt.Sprintf("hosts[%d].rdma[%d]", i, j), Reason: fmt.Sprintf("%s needs an RDMA device from %s to %s", b, h.SSH, hf.Hosts[j].SSH)}
				}
			}
		}
		// Two ranks of one machine would share its RDMA devices and
		// coordinator port; jaccl has no way to run them.
		for i := range hf.Hosts {
			for j := range i {
				if hf.Hosts[i].SSH == hf.Hosts[j].SSH && slices.Equal(hf.Hosts[i].IPs, hf.Hosts[j].IPs) {
					return &HostfileError{Field: fmt.Sprintf("hosts[%d]", i), Reason: fmt.Sprintf("duplicates hosts[%d] (%s)", j, hf.Hosts[j].SSH)}
				}
			}
		}
	}
	return nil
}

// UnmarshalJSON reads the format MarshalJSON writes (mlx.launch's), so that
// a Hostfile can be a field of a larger JSON document. It decodes only: use
// ParseHostfile to validate a file a person wrote.
func (hf *Hostfile) UnmarshalJSON(data []byte) error {
	h, err := decodeHostfile(data)
	if err != nil {
		return err
	}
	*hf = *h
	return nil
}
