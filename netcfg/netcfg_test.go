package netcfg_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/mlxdist/mlxdist/jaccl/cluster"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/netcfg"
	"github.com/mlxdist/mlxdist/netcfg/netcfgtest"
)

var seedSSH = map[string]string{"hwStudio1": "hwStudio1.local", "hwStudio2": "hwStudio2.local"}

func discoverDir(t *testing.T, dir string, nodes ...string) (*netcfg.Cluster, []*netcfg.NodeState) {
	t.Helper()
	r := &netcfgtest.ReplayRunner{Dir: filepath.Join("testdata", dir)}
	c, states, err := netcfg.DiscoverCluster(context.Background(), r, nodes, seedSSH)
	require.NoError(t, err)
	return c, states
}

func commands(p *netcfg.Plan, node string) []string {
	var out []string
	for _, s := range p.NodeSteps(node) {
		out = append(out, s.Command.String())
	}
	return out
}

func TestSeedClusterPlansTheSeedShape(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	require.Len(t, c.Cables, 2)
	assert.Equal(t, netcfg.Cable{A: "hwStudio1:en3", B: "hwStudio2:en3"}, c.Cables[0])
	assert.Equal(t, netcfg.Cable{A: "hwStudio1:en5", B: "hwStudio2:en5"}, c.Cables[1])
	assert.Equal(t, &netcfg.Addressed{Interface: "en1", Address: "192.168.0.105/24"}, c.Nodes[0].LAN)
	assert.Equal(t, "26.3", c.Nodes[0].MacOS)

	p, err := netcfg.MakePlan(c, netcfg.Options{Envs: []string{"MLX_METAL_FAST_SYNCH=1"}})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"ifconfig bridge0 down",
		"ifconfig bridge0 deletem en3",
		"ifconfig bridge0 deletem en5",
		"ifconfig en3 inet 10.10.0.1/30 up",
		"ifconfig en5 inet 10.10.1.1/30 up",
	}, commands(p, "hwStudio1"))
	assert.Equal(t, []string{
		"ifconfig bridge0 down",
		"ifconfig bridge0 deletem en3",
		"ifconfig bridge0 deletem en5",
		"ifconfig en3 inet 10.10.0.2/30 up",
		"ifconfig en5 inet 10.10.1.2/30 up",
	}, commands(p, "hwStudio2"))
	assert.Empty(t, p.Skipped)

	got, err := json.Marshal(p.Hostfile)
	require.NoError(t, err)
	want, err := os.ReadFile("testdata/seed-hostfile.json")
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got))
}

func TestApplyRunsOnlyWhatANodeStillNeeds(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)

	t.Run("a converged cluster gets zero commands", func(t *testing.T) {
		r := &netcfgtest.ReplayRunner{Dir: "testdata/converged"}
		res, err := netcfg.Apply(context.Background(), r, p, netcfg.ApplyOptions{Apply: true})
		require.NoError(t, err)
		assert.Empty(t, r.MutatingCalls())
		assert.Empty(t, res.Commands)
		assert.NotEmpty(t, r.Calls(), "apply must have read the state")
	})
	t.Run("a freshly booted cluster gets the whole plan", func(t *testing.T) {
		r := &netcfgtest.ReplayRunner{Dir: "testdata/seed"}
		res, err := netcfg.Apply(context.Background(), r, p, netcfg.ApplyOptions{Apply: true})
		require.NoError(t, err)
		assert.Len(t, r.MutatingCalls(), 10)
		require.Len(t, res.Snapshot.Nodes, 2)
		assert.Equal(t, []string{"en3", "en5"}, netcfg.FindIface(res.Snapshot.Nodes[0].Interfaces, "bridge0").Members)
	})
	t.Run("a dry run changes nothing but reports the commands", func(t *testing.T) {
		r := &netcfgtest.ReplayRunner{Dir: "testdata/seed"}
		res, err := netcfg.Apply(context.Background(), r, p, netcfg.ApplyOptions{})
		require.NoError(t, err)
		assert.Empty(t, r.MutatingCalls())
		assert.Len(t, res.Commands["hwStudio2"], 5)
	})
}

func TestRollbackUndoesAddressesAndBridgeMembership(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)
	res, err := netcfg.Apply(context.Background(), &netcfgtest.ReplayRunner{Dir: "testdata/seed"}, p, netcfg.ApplyOptions{})
	require.NoError(t, err)

	r := &netcfgtest.ReplayRunner{Dir: "testdata/converged"}
	cmds, err := netcfg.Rollback(context.Background(), r, res.Snapshot, true)
	require.NoError(t, err)
	var got []string
	for _, c := range cmds["hwStudio1"] {
		got = append(got, c.String())
	}
	assert.Equal(t, []string{
		"ifconfig en3 inet 10.10.0.1 -alias",
		"ifconfig en5 inet 10.10.1.1 -alias",
		"ifconfig bridge0 addm en3",
		"ifconfig bridge0 addm en5",
		"ifconfig bridge0 up",
	}, got)
	assert.Len(t, r.MutatingCalls(), 10)
	for _, call := range r.Calls() {
		assert.NotEqual(t, "route", call.Command.Program)
	}
}

func TestVerify(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)

	t.Run("a converged cluster passes every check", func(t *testing.T) {
		fs, err := netcfg.Verify(context.Background(), &netcfgtest.ReplayRunner{Dir: "testdata/converged"}, p)
		require.NoError(t, err)
		require.NotEmpty(t, fs)
		checks := map[string]int{}
		for _, f := range fs {
			assert.True(t, f.OK, "%+v", f)
			checks[f.Check]++
		}
		assert.Equal(t, 4, checks["ping"])
		assert.Equal(t, 4, checks["address"])
		assert.Equal(t, 4, checks["rdma"])
	})
	t.Run("a freshly booted cluster fails on bridges and addresses", func(t *testing.T) {
		fs, err := netcfg.Verify(context.Background(), &netcfgtest.ReplayRunner{Dir: "testdata/seed"}, p)
		require.NoError(t, err)
		failed := map[string]int{}
		for _, f := range fs {
			if !f.OK {
				failed[f.Check]++
			}
		}
		assert.Equal(t, 4, failed["bridge"])
		assert.Equal(t, 4, failed["address"])
	})
}

func TestHubAttachedPeerIsOneCable(t *testing.T) {
	c, _ := discoverDir(t, "hub", "hwStudio1", "hwStudio2")
	require.Len(t, c.Cables, 1)
	assert.Equal(t, netcfg.Cable{A: "hwStudio1:en3", B: "hwStudio2:en3"}, c.Cables[0])
	assert.Contains(t, c.Nodes[0].Routes, "10.10.0.0/16")
	assert.Contains(t, c.Nodes[0].Other, netcfg.Addressed{Interface: "utun4", Address: "100.101.2.3/32"})

	// The default pool is routed away; the next private pool is taken,
	// and the plan says why.
	auto, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)
	assert.Equal(t, "172.31.0.0/16", auto.Pool.String())
	assert.Contains(t, auto.PoolNote, "route 10.10.0.0/16 on hwStudio1")

	// A pool given by hand is never replaced.
	_, err = netcfg.MakePlan(c, netcfg.Options{Pool: netcfg.DefaultPool})
	var ex *netcfg.PoolExhaustedError
	require.ErrorAs(t, err, &ex)
	assert.Contains(t, err.Error(), "route 10.10.0.0/16 on hwStudio1")

	p, err := netcfg.MakePlan(c, netcfg.Options{Pool: netip.MustParsePrefix("10.20.0.0/16")})
	require.NoError(t, err)
	assert.Equal(t, "ifconfig en3 inet 10.20.0.1/30 up", commands(p, "hwStudio1")[len(commands(p, "hwStudio1"))-1])
}

func readCluster(t *testing.T, path string) *netcfg.Cluster {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	c, err := netcfg.ParseCluster(b)
	require.NoError(t, err)
	return c
}

func TestFourNodeFullMesh(t *testing.T) {
	c := readCluster(t, "testdata/mesh4.json")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)
	require.Len(t, p.Links, 6)
	for i, l := range p.Links {
		assert.Equal(t, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, byte(i), 0}), 30), l.Subnet)
	}
	h := p.Hostfile
	require.Len(t, h.Hosts, 4)
	assert.Nil(t, h.Hosts[2].RDMA[2])
	assert.Equal(t, cluster.Devices{"rdma_en4"}, h.Hosts[0].RDMA[3])
	assert.Equal(t, cluster.Devices{"rdma_en2"}, h.Hosts[3].RDMA[0])
	assert.Equal(t, []string{"192.168.1.13"}, h.Hosts[2].IPs)
	for _, n := range p.Nodes {
		assert.Len(t, commands(p, n), 1+3+3, n) // bridge0 down, 3 deletem, 3 addresses
	}

	t.Run("a ring hostfile lists Thunderbolt addresses", func(t *testing.T) {
		p, err := netcfg.MakePlan(c, netcfg.Options{Backend: netcfg.BackendRing})
		require.NoError(t, err)
		// m2 listens on the address of the m1-m2 cable, 10.10.0.2.
		assert.Equal(t, []string{"10.10.0.2"}, p.Hostfile.Hosts[1].IPs)
		assert.Nil(t, p.Hostfile.Hosts[1].RDMA)
	})
	t.Run("jaccl refuses a cluster without a full mesh", func(t *testing.T) {
		c := readCluster(t, "testdata/mesh4.json")
		c.Cables = append(c.Cables[:1], c.Cables[2:]...) // drop m1-m3
		_, err := netcfg.MakePlan(c, netcfg.Options{})
		var pf *netcfg.PreflightError
		require.ErrorAs(t, err, &pf)
		assert.Contains(t, err.Error(), "no cable between m1 and m3")
		_, err = netcfg.MakePlan(c, netcfg.Options{Backend: netcfg.BackendJACCLRing})
		assert.NoError(t, err, "m1-m2-m3-m4-m1 is still a ring")
	})
}

func TestOverlapsAreAvoidedAndNamed(t *testing.T) {
	base := func() *netcfg.Cluster { return readCluster(t, "testdata/mesh4.json") }
	tests := []struct {
		name     string
		edit     func(c *netcfg.Cluster)
		pool     string
		wantLink string // first link's subnet
		wantWhy  string // in the first skip reason, or the error
		wantErr  bool
	}{
		{"a LAN inside the pool pushes the first cable to the next subnet",
			func(c *netcfg.Cluster) { c.Nodes[1].LAN.Address = "10.10.0.7/24" }, "", "10.10.1.0/30", "LAN 10.10.0.7/24 on en0 of m2", false},
		{"a VPN address is avoided",
			func(c *netcfg.Cluster) { c.Nodes[3].Other = []netcfg.Addressed{{"utun4", "10.10.0.1/32"}} }, "", "10.10.1.0/30", "utun4 address 10.10.0.1/32 on m4", false},
		{"a route is avoided",
			func(c *netcfg.Cluster) { c.Nodes[0].Routes = []string{"10.10.0.0/23"} }, "", "10.10.2.0/30", "route 10.10.0.0/23 on m1", false},
		{"a pool given by hand and covered by a VPN route is exhausted with the reason",
			func(c *netcfg.Cluster) { c.Nodes[2].Routes = []string{"10.0.0.0/8"} }, "10.10.0.0/16", "", "route 10.0.0.0/8 on m3", true},
		{"a pool too small for six cables is exhausted",
			func(c *netcfg.Cluster) {}, "10.10.0.0/28", "", "room for 4 of 6 cables", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(c)
			var opts netcfg.Options
			if tt.pool != "" {
				opts.Pool = netip.MustParsePrefix(tt.pool)
			}
			p, err := netcfg.MakePlan(c, opts)
			if tt.wantErr {
				var ex *netcfg.PoolExhaustedError
				require.ErrorAs(t, err, &ex)
				assert.Contains(t, err.Error(), tt.wantWhy)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantLink, p.Links[0].Subnet.String())
			require.NotEmpty(t, p.Skipped)
			assert.Contains(t, p.Skipped[0].Reason, tt.wantWhy)
		})
	}
}

func TestPreflight(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *netcfg.Cluster)
		want string
	}{
		{"RDMA off says how to enable it", func(c *netcfg.Cluster) { c.Nodes[1].RDMAEnabled = false }, "run `rdma_ctl enable` in macOS Recovery"},
		{"a missing rdma device is named", func(c *netcfg.Cluster) { c.Nodes[0].Thunderbolt[0].RDMA = "" }, "m1:en2 has no rdma_ device"},
		{"macOS versions must match", func(c *netcfg.Cluster) { c.Nodes[2].MacOS = "26.4" }, "m3 runs macOS 26.4 but m1 runs 26.3"},
		{"macOS before 26.2 is refused", func(c *netcfg.Cluster) { c.Nodes[0].MacOS = "26.1" }, "jaccl needs 26.2 or later"},
		{"an unknown macOS version is refused", func(c *netcfg.Cluster) { c.Nodes[0].MacOS = "" }, "macOS version of m1 unknown"},
		{"more than eight nodes are refused", func(c *netcfg.Cluster) {
			for i := 0; i < 5; i++ {
				n := c.Nodes[3]
				n.Name = n.Name + strings.Repeat("x", i+1)
				c.Nodes = append(c.Nodes, n)
			}
		}, "9 nodes; jaccl supports at most 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := readCluster(t, "testdata/mesh4.json")
			tt.edit(c)
			_, err := netcfg.MakePlan(c, netcfg.Options{})
			var pf *netcfg.PreflightError
			require.ErrorAs(t, err, &pf)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestClusterDescriptionIsStrict(t *testing.T) {
	good := `{"nodes": [{"name": "a", "lan": {"interface": "en1", "address": "192.168.0.105/24"},
	  "thunderbolt": [{"interface": "en3", "rdma": "rdma_en3"}], "macos": "26.3", "rdma_enabled": true},
	 {"name": "b", "thunderbolt": [{"interface": "en3"}, {"interface": "en5"}]}],
	 "cables": [{"a": "a:en3", "b": "b:en3"}]}`
	_, err := netcfg.ParseCluster([]byte(good))
	require.NoError(t, err)

	tests := []struct {
		name, from, to, field string
	}{
		{"an unknown field is refused", `"macos"`, `"mac_os"`, "(json)"},
		{"a bad CIDR names its field", `192.168.0.105/24`, `192.168.0.300/24`, "nodes[0].lan.address"},
		{"a cable to an unknown node is refused", `"b": "b:en3"}`, `"b": "c:en3"}`, "cables[0].b"},
		{"a cable to an unknown interface is refused", `"b": "b:en3"}`, `"b": "b:en9"}`, "cables[0].b"},
		{"an interface cabled twice is refused", `"b": "b:en3"}]`, `"b": "b:en3"}, {"a": "a:en3", "b": "b:en5"}]`, "cables[1].a"},
		{"a cable to the same node is refused", `"b": "b:en3"}`, `"b": "a:en3"}`, "cables[0].b"},
		{"a bad route is refused", `"rdma_enabled": true}`, `"rdma_enabled": true, "routes": ["10/8"]}`, "nodes[0].routes[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(good, tt.from, tt.to, 1)
			require.NotEqual(t, good, bad)
			_, err := netcfg.ParseCluster([]byte(bad))
			var de *netcfg.DescriptionError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.field, de.Field, err.Error())
		})
	}
}

func TestSafetyCheckRefusesDangerousCommands(t *testing.T) {
	tb, prot := []string{"en3", "en5"}, []string{"en1"}
	tests := []struct {
		name string
		cmd  netcfg.Command
		want string // "" means allowed
	}{
		{"the seed's kernel-panicking route change", netcfg.Command{"route", []string{"change", "192.168.0.1", "-interface", "en3"}}, "route commands are never issued"},
		{"route by full path", netcfg.Command{"/sbin/route", []string{"add", "10.10.0.2", "-interface", "en3"}}, "route commands are never issued"},
		{"switching network locations", netcfg.Command{"networksetup", []string{"-switchtolocation", "exo"}}, "-switchtolocation"},
		{"disabling a network service", netcfg.Command{"networksetup", []string{"-setnetworkserviceenabled", "Wi-Fi", "off"}}, "-setnetworkserviceenabled"},
		{"creating a location", netcfg.Command{"networksetup", []string{"-createlocation", "exo", "populate"}}, "-createlocation"},
		{"touching the LAN interface", netcfg.Command{"ifconfig", []string{"en1", "inet", "10.10.0.1/30", "up"}}, "LAN or protected"},
		{"an address on a non-Thunderbolt port", netcfg.Command{"ifconfig", []string{"en0", "inet", "10.10.0.1/30", "up"}}, "not a Thunderbolt interface"},
		{"a wider subnet than /30", netcfg.Command{"ifconfig", []string{"en3", "inet", "10.10.0.1/24", "up"}}, "not an IPv4 /30"},
		{"another ifconfig form", netcfg.Command{"ifconfig", []string{"en3", "destroy"}}, "not one of the ifconfig forms"},
		{"a shell", netcfg.Command{"sh", []string{"-c", "route change default -interface en3"}}, "only ifconfig"},
		{"the seed's address form", netcfg.Command{"ifconfig", []string{"en3", "inet", "10.10.0.1/30", "up"}}, ""},
		{"bridge teardown", netcfg.Command{"ifconfig", []string{"bridge0", "deletem", "en5"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := netcfg.CheckCommand("hwStudio1", tt.cmd, tb, prot)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			var ue *netcfg.UnsafeError
			require.ErrorAs(t, err, &ue)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestTamperedPlanFileIsRefused(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)
	b, err := json.Marshal(p)
	require.NoError(t, err)

	_, err = netcfg.ReadPlan(strings.NewReader(string(b)))
	require.NoError(t, err, "an untouched plan reads back")

	var q netcfg.Plan
	require.NoError(t, json.Unmarshal(b, &q))
	q.Steps = append(q.Steps, netcfg.Step{Node: "hwStudio1", Kind: netcfg.StepSetAddress, Command: netcfg.Command{"route", []string{"change", "192.168.0.1", "-interface", "en3"}}})
	b, err = json.Marshal(q)
	require.NoError(t, err)
	_, err = netcfg.ReadPlan(strings.NewReader(string(b)))
	var ue *netcfg.UnsafeError
	require.ErrorAs(t, err, &ue)

	_, err = netcfg.Apply(context.Background(), &netcfgtest.ReplayRunner{Dir: "testdata/seed"}, &q, netcfg.ApplyOptions{Apply: true})
	require.ErrorAs(t, err, &ue, "apply re-checks a plan it did not make")
}

func TestDiagnose(t *testing.T) {
	_, seed := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	_, conv := discoverDir(t, "converged", "hwStudio1", "hwStudio2")
	off := *conv[1]
	off.RDMAEnabled = false
	noDev := *conv[0]
	noDev.RDMADevices = []string{"rdma_en2"}

	tests := []struct {
		name   string
		text   string
		states []*netcfg.NodeState
		want   string
	}{
		{"errno 22 names the bridge member", "[jaccl] Changing queue pair to RTR failed with errno 22", seed, "en3 is still a member of bridge0 on hwStudio2"},
		{"errno 22 on a clean node explains the GID", "Changing queue pair to RTR failed with errno 22", conv, "no IPv4-mapped GID"},
		{"errno 60 names the bridge member", "recv failed with errno 60", seed, "on hwStudio1 run `sudo ifconfig bridge0 deletem en5`"},
		{"errno 60 on a clean node points at the side channel", "connect: errno 60 (Operation timed out)", conv, "coordinator"},
		{"EBUSY is too many queue pairs", "Creating queue pair failed with errno 16", conv, "stop the other jaccl"},
		{"a missing device is checked on every node", "Could not find device rdma_en3", []*netcfg.NodeState{&noDev, conv[1]}, "hwStudio1 has no device rdma_en3"},
		{"protection domain means RDMA is off", "Couldn't allocate protection domain", conv, "rdma_ctl enable"},
		{"RDMA off shows even for an unknown error", "something else", []*netcfg.NodeState{conv[0], &off}, "RDMA is disabled on hwStudio2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := netcfg.Diagnose(tt.text, tt.states)
			require.NotEmpty(t, ds)
			var all []string
			for _, d := range ds {
				all = append(all, d.Cause+" -> "+d.Fix)
			}
			assert.Contains(t, strings.Join(all, "\n"), tt.want)
		})
	}
	assert.Empty(t, netcfg.Diagnose("unrelated", conv), "a healthy cluster and an unknown error give nothing")
}

func TestDiscoveryErrorsNameTheNode(t *testing.T) {
	r := &netcfgtest.ReplayRunner{Dir: t.TempDir()}
	_, err := netcfg.Discover(context.Background(), r, "ghost")
	var ce *netcfg.CommandError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "ghost", ce.Node)
	assert.True(t, errors.Is(err, os.ErrNotExist))
}
