package netcfg_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/netcfg"
)

// randomCluster builds a full-mesh cluster from rng: 2 to 6 nodes, one or
// two cables per pair, LAN, VPN addresses and routes drawn near the pool so
// overlaps are common, and a pool that is sometimes tiny.
func randomCluster(rng *rand.Rand) (*netcfg.Cluster, netcfg.Options) {
	near := func() netip.Addr {
		bases := [][2]byte{{10, 10}, {10, 0}, {192, 168}, {100, 100}, {172, 16}}
		b := bases[rng.IntN(len(bases))]
		return netip.AddrFrom4([4]byte{b[0], b[1], byte(rng.IntN(8)), byte(1 + rng.IntN(250))})
	}
	n := 2 + rng.IntN(5)
	c := &netcfg.Cluster{}
	next := make([]int, n)
	for i := 0; i < n; i++ {
		node := netcfg.Node{Name: fmt.Sprintf("n%d", i), MacOS: "26.3", RDMAEnabled: true,
			LAN: &netcfg.Addressed{"en0", netip.PrefixFrom(near(), 16+rng.IntN(15)).String()}}
		for k := 0; k < 2*n; k++ {
			node.Thunderbolt = append(node.Thunderbolt, netcfg.Port{Interface: fmt.Sprintf("en%d", k+2), RDMA: fmt.Sprintf("rdma_en%d", k+2)})
		}
		for k := rng.IntN(3); k > 0; k-- {
			node.Other = append(node.Other, netcfg.Addressed{fmt.Sprintf("utun%d", k), netip.PrefixFrom(near(), 24+rng.IntN(9)).String()})
		}
		for k := rng.IntN(3); k > 0; k-- {
			node.Routes = append(node.Routes, netip.PrefixFrom(near(), 20+rng.IntN(13)).Masked().String())
		}
		c.Nodes = append(c.Nodes, node)
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			for k := 1 + rng.IntN(2); k > 0; k-- {
				c.Cables = append(c.Cables, netcfg.Cable{fmt.Sprintf("n%d:en%d", i, next[i]+2), fmt.Sprintf("n%d:en%d", j, next[j]+2)})
				next[i]++
				next[j]++
			}
		}
	}
	rng.Shuffle(len(c.Cables), func(i, j int) { c.Cables[i], c.Cables[j] = c.Cables[j], c.Cables[i] })
	pools := []string{"10.10.0.0/16", "10.10.0.0/22", "10.10.0.0/26", "10.0.0.0/8", "192.168.0.0/16"}
	return c, netcfg.Options{Pool: netip.MustParsePrefix(pools[rng.IntN(len(pools))])}
}

// checkPlanProperties asserts what must hold for every plan: each cable one
// /30, both ends in it with distinct host addresses, no subnet shared, no
// overlap with anything reserved on any node, no route command.
func checkPlanProperties(t *testing.T, c *netcfg.Cluster, opts netcfg.Options) (planned bool) {
	t.Helper()
	p, err := netcfg.MakePlan(c, opts)
	if err != nil {
		var ex *netcfg.PoolExhaustedError
		require.True(t, errors.As(err, &ex), "only an exhausted pool may fail here: %v", err)
		return false
	}
	require.Len(t, p.Links, len(c.Cables), "every cable gets exactly one /30")
	rs := netcfg.Reservations(c, map[netcfg.Endpoint]bool{})
	for i, l := range p.Links {
		require.Equal(t, 30, l.Subnet.Bits())
		require.True(t, opts.Pool.Contains(l.Subnet.Addr()), "%s outside pool %s", l.Subnet, opts.Pool)
		require.True(t, l.Subnet.Contains(l.AddrA.Addr()) && l.Subnet.Contains(l.AddrB.Addr()))
		require.NotEqual(t, l.AddrA.Addr(), l.AddrB.Addr())
		require.NotEqual(t, l.Subnet.Addr(), l.AddrA.Addr(), "not the network address")
		for _, r := range rs {
			require.False(t, r.Prefix.Overlaps(l.Subnet), "%s overlaps %s", l.Subnet, r.What)
		}
		for _, m := range p.Links[i+1:] {
			require.False(t, m.Subnet.Overlaps(l.Subnet), "two cables share %s", l.Subnet)
		}
	}
	for _, s := range p.Steps {
		require.Equal(t, "ifconfig", s.Command.Program)
		for _, n := range c.Nodes {
			if n.Name == s.Node {
				require.NotContains(t, s.Command.Args, n.LAN.Interface)
			}
		}
	}
	require.NoError(t, netcfg.CheckSafe(p))
	return true
}

func TestPlanPropertiesOnRandomClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 1))
	planned, skipped := 0, 0
	for i := 0; i < 300; i++ {
		c, opts := randomCluster(rng)
		if checkPlanProperties(t, c, opts) {
			planned++
		}
		if p, err := netcfg.MakePlan(c, opts); err == nil && len(p.Skipped) > 0 {
			skipped++
		}
	}
	// The generator must exercise both outcomes and real overlaps, or the
	// properties above prove nothing.
	require.Greater(t, planned, 100)
	require.Less(t, planned, 300)
	require.Greater(t, skipped, 20)
}

func FuzzPlan(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 2026} {
		f.Add(s, s*7)
	}
	f.Fuzz(func(t *testing.T, a, b uint64) {
		c, opts := randomCluster(rand.New(rand.NewPCG(a, b)))
		checkPlanProperties(t, c, opts)
	})
}

// FuzzReadCluster feeds arbitrary bytes to the strict parser: it may
// refuse, never panic, and what it accepts plans or fails with a typed error.
func FuzzReadCluster(f *testing.F) {
	f.Add([]byte(`{"nodes":[{"name":"a","thunderbolt":[{"interface":"en3"}]},{"name":"b","thunderbolt":[{"interface":"en3"}]}],"cables":[{"a":"a:en3","b":"b:en3"}]}`))
	f.Add([]byte(`{"nodes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := netcfg.ParseCluster(b)
		if err != nil {
			return
		}
		p, err := netcfg.MakePlan(c, netcfg.Options{Backend: netcfg.BackendRing})
		if err == nil {
			require.NoError(t, netcfg.CheckSafe(p))
			for _, s := range p.Steps {
				require.NotEqual(t, "route", s.Command.Program)
			}
		}
	})
}
