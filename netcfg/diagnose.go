package netcfg

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Diagnosis is a likely cause of an error and what to do about it.
type Diagnosis struct {
	Cause string `json:"cause"`
	Fix   string `json:"fix"`
}

var missingDevice = regexp.MustCompile(`[Cc]ould not find device (rdma_[A-Za-z0-9]+)`)

// Diagnose reads an error text from MLX / jaccl together with the
// discovered node states and returns the likely causes, made specific by the
// state ("en3 is still a member of bridge0 on hwStudio2: run ..."). Problems
// the state shows on its own (RDMA off, a port left in a bridge) are
// reported even when the text matches nothing known.
func Diagnose(errText string, states []*NodeState) []Diagnosis {
	var ds []Diagnosis
	add := func(cause, fix string) {
		for _, d := range ds {
			if d.Cause == cause {
				return
			}
		}
		ds = append(ds, Diagnosis{cause, fix})
	}
	low := strings.ToLower(errText)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(low, strings.ToLower(s)) {
				return true
			}
		}
		return false
	}
	bridgeIssues := func() bool {
		found := false
		for _, s := range states {
			for _, tb := range sortedTB(s) {
				if br := s.BridgeOf(tb); br != "" {
					found = true
					add(fmt.Sprintf("%s is still a member of %s on %s", tb, br, s.Name),
						fmt.Sprintf("on %s run `sudo ifconfig %s deletem %s` (or `tbnet apply --apply`)", s.Name, br, tb))
				}
			}
		}
		return found
	}
	switch {
	case has("Changing queue pair to RTR failed", "errno 22", "EINVAL"):
		found := bridgeIssues()
		for _, s := range states {
			for _, tb := range sortedTB(s) {
				in := s.Interface(tb)
				if in != nil && in.Active && len(in.Addrs) == 0 {
					found = true
					add(fmt.Sprintf("%s on %s is connected but has no IPv4 address, so it has no IPv4-mapped GID", tb, s.Name),
						fmt.Sprintf("give it its /30 with `tbnet apply --apply` (e.g. `sudo ifconfig %s inet 10.10.0.1/30 up`)", tb))
				}
			}
			if br := s.Interface("bridge0"); br != nil && br.Up && len(br.Members) > 0 {
				found = true
				add(fmt.Sprintf("bridge0 is up on %s", s.Name), fmt.Sprintf("on %s run `sudo ifconfig bridge0 down`", s.Name))
			}
		}
		if !found {
			add("queue pair could not reach RTR: a bridge still up or no IPv4 on the Thunderbolt interface (no IPv4-mapped GID)",
				"take the Thunderbolt ports out of bridge0 and give each a /30: `tbnet plan` then `tbnet apply --apply`")
		}
	case has("errno 60", "ETIMEDOUT", "timed out"):
		if !bridgeIssues() {
			add("the jaccl side channel timed out: the coordinator (rank 0, hosts[0].ips[0]:port) was unreachable or not started",
				"check that every node reaches the LAN address of rank 0, that rank 0 starts first, and that no Thunderbolt port is a bridge member")
		}
	case has("errno 16", "EBUSY", "resource busy"):
		add("too many RDMA queue pairs: a device allows about 10, and other jaccl processes still hold theirs",
			"stop the other jaccl / mlx.launch processes on every node (`pgrep -fl mlx`), then start again")
	case missingDevice.MatchString(errText):
		dev := missingDevice.FindStringSubmatch(errText)[1]
		iface := strings.TrimPrefix(dev, "rdma_")
		found := false
		for _, s := range states {
			if s.HasRDMADevice(dev) {
				if in := s.Interface(iface); in != nil && !in.Active {
					found = true
					add(fmt.Sprintf("%s exists on %s but %s has no link (status inactive)", dev, s.Name, iface),
						fmt.Sprintf("check the Thunderbolt cable on %s's %s", s.Name, iface))
				}
				continue
			}
			found = true
			add(fmt.Sprintf("%s has no device %s (it has %s)", s.Name, dev, strings.Join(s.RDMADevices, ", ")),
				"fix the device name in the hostfile's rdma matrix, or regenerate it with `tbnet plan --hostfile`")
		}
		if !found {
			add(fmt.Sprintf("device %s not found: wrong name in the hostfile or the cable not connected", dev),
				"compare the hostfile's rdma matrix with `ibv_devices` on each node")
		}
	case has("Couldn't allocate protection domain", "protection domain"):
		add("RDMA is not enabled", "run `rdma_ctl enable` in macOS Recovery on each node, reboot, and check `rdma_ctl status` says enabled")
	}
	for _, s := range states {
		if !s.RDMAEnabled {
			add(fmt.Sprintf("RDMA is disabled on %s", s.Name), fmt.Sprintf("boot %s into macOS Recovery, run `rdma_ctl enable`, reboot", s.Name))
		}
	}
	bridgeIssues()
	return ds
}

func sortedTB(s *NodeState) []string {
	var out []string
	for dev := range s.thunderboltInterfaces() {
		out = append(out, dev)
	}
	sort.Slice(out, func(i, j int) bool { return ifaceLess(out[i], out[j]) })
	return out
}
