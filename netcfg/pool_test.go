package netcfg_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/netcfg"
)

func TestOnlyPrivatePoolsAreAccepted(t *testing.T) {
	tests := []struct {
		pool string
		ok   bool
	}{
		{"8.8.8.0/24", false},
		{"0.0.0.0/0", false},
		{"100.100.0.0/16", false},
		{"11.0.0.0/16", false},
		{"10.0.0.0/7", false},
		{"172.32.0.0/16", false},
		{"192.169.0.0/16", false},
		{"10.10.0.0/16", true},
		{"10.0.0.0/8", true},
		{"172.20.0.0/16", true},
		{"192.168.77.0/24", true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("pool %s private %v", tt.pool, tt.ok), func(t *testing.T) {
			c := readCluster(t, "testdata/mesh4.json")
			p, err := netcfg.MakePlan(c, netcfg.Options{Pool: netip.MustParsePrefix(tt.pool)})
			if tt.ok {
				require.NoError(t, err)
				for _, l := range p.Links {
					assert.True(t, netip.MustParsePrefix(tt.pool).Contains(l.Subnet.Addr()))
				}
				return
			}
			require.ErrorIs(t, err, netcfg.ErrPublicPool)
			assert.Contains(t, err.Error(), tt.pool)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestSkippedSubnetsAreSummarisedInOneLinePerReason(t *testing.T) {
	c := readCluster(t, "testdata/mesh4.json")
	c.Nodes[1].Routes = []string{"10.0.0.0/12"}
	p, err := netcfg.MakePlan(c, netcfg.Options{Pool: netip.MustParsePrefix("10.0.0.0/8")})
	require.NoError(t, err)
	require.Len(t, p.Skipped, 4096, "every /24 of 10.0.0.0/12 is passed over")
	var b bytes.Buffer
	require.NoError(t, p.WriteText(&b))
	var skipped []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(l, "# skipped") {
			skipped = append(skipped, l)
		}
	}
	assert.Equal(t, []string{"# skipped 4096 subnets, 10.0.0.0/30 to 10.15.255.0/30: overlaps route 10.0.0.0/12 on m2"}, skipped)
}

func TestATakenDefaultPoolGivesWayToTheNextPrivatePool(t *testing.T) {
	c := readCluster(t, "testdata/mesh4.json")
	c.Nodes[2].Other = []netcfg.Addressed{{Interface: "utun3", Address: "10.0.0.1/8"}}
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)
	assert.Equal(t, "172.31.0.0/16", p.Pool.String())
	assert.Contains(t, p.PoolNote, "utun3")
	var b bytes.Buffer
	require.NoError(t, p.WriteText(&b))
	assert.Contains(t, b.String(), "# pool 172.31.0.0/16 chosen because the default pool 10.10.0.0/16 has no room")
	require.NoError(t, netcfg.CheckSafe(p))
}

func TestNineNodesFailPreflightInOneReadableLine(t *testing.T) {
	var js strings.Builder
	js.WriteString(`{"nodes": [`)
	for i := 1; i <= 9; i++ {
		if i > 1 {
			js.WriteString(",")
		}
		fmt.Fprintf(&js, `{"name": "m%d", "ssh": "m%d.local", "lan": {"interface": "en0", "address": "192.168.1.%d/24"},
		  "thunderbolt": [{"interface": "en2", "rdma": "rdma_en2"}, {"interface": "en3", "rdma": "rdma_en3"}],
		  "macos": "26.3", "rdma_enabled": true}`, i, i, 10+i)
	}
	js.WriteString(`], "cables": [`)
	for i := 1; i <= 9; i++ {
		if i > 1 {
			js.WriteString(",")
		}
		fmt.Fprintf(&js, `{"a": "m%d:en3", "b": "m%d:en2"}`, i, i%9+1)
	}
	js.WriteString(`]}`)
	c, err := netcfg.ParseCluster([]byte(js.String()))
	require.NoError(t, err)
	_, err = netcfg.MakePlan(c, netcfg.Options{})
	var pf *netcfg.PreflightError
	require.True(t, errors.As(err, &pf), "%v", err)
	require.Greater(t, len(pf.Problems), 10, "every problem is kept")
	assert.Less(t, len(err.Error()), 400, err.Error())
	assert.Contains(t, err.Error(), "9 nodes; jaccl supports at most 8")
	assert.Contains(t, err.Error(), fmt.Sprintf("and %d more", len(pf.Problems)-3))
}

func TestHostfileEnvsMustBeNameValue(t *testing.T) {
	c := readCluster(t, "testdata/mesh4.json")
	for _, env := range []string{"NOEQ", "=x", "1A=b", "A B=c"} {
		_, err := netcfg.MakePlan(c, netcfg.Options{Envs: []string{env}})
		require.Error(t, err, env)
		assert.Contains(t, err.Error(), "NAME=value")
	}
	_, err := netcfg.MakePlan(c, netcfg.Options{Envs: []string{"MLX_METAL_FAST_SYNCH=1"}})
	assert.NoError(t, err)
}
