package cluster

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
)

func TestReadHostfileReadsTheSeedsTwoStudioCluster(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)

	assert.Equal(t, JACCL, hf.Backend)
	assert.Equal(t, []string{"MLX_METAL_FAST_SYNCH=1"}, hf.Envs)
	require.Len(t, hf.Hosts, 2)
	assert.Equal(t, Host{
		SSH:  "hwStudio1.local",
		IPs:  []string{"192.168.0.105"},
		RDMA: []Devices{nil, {"rdma_en3", "rdma_en5"}},
	}, hf.Hosts[0])
	assert.Equal(t, "192.168.0.107", hf.Hosts[1].IPs[0])
	assert.Equal(t, [][]Devices{{nil, {"rdma_en3", "rdma_en5"}}, {{"rdma_en3", "rdma_en5"}, nil}}, hf.DeviceMatrix())
}

func TestParseHostfileAcceptsValidShapes(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		backend Backend
		hosts   int
	}{
		{"a jaccl-ring hostfile may leave non-neighbours null", "testdata/hosts-jaccl-ring.json", JACCLRing, 4},
		{"a bare list of hosts has no back-end", "testdata/hosts-local-ring.json", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hf, err := ReadHostfile(tt.file)
			require.NoError(t, err)
			assert.Equal(t, tt.backend, hf.Backend)
			assert.Len(t, hf.Hosts, tt.hosts)
		})
	}
}

func TestParseHostfileRejectsMalformedFilesNamingTheField(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		field  string
		reason string
	}{
		{"an unknown top-level field is rejected", "unknown-top-field", "hostz", "unknown field"},
		{"a misspelt host field is rejected", "unknown-host-field", "hosts[0].rdmaa", "unknown field"},
		{"an empty host list is rejected", "no-hosts", "hosts", "no hosts"},
		{"a host needs an ssh name", "missing-ssh", "hosts[0].ssh", "missing"},
		{"an address out of range is not IPv4", "bad-ip", "hosts[0].ips[0]", "not an IPv4"},
		{"an IPv6 address is refused", "ipv6", "hosts[0].ips[0]", "not an IPv4"},
		{"an env entry needs an equals sign", "bad-env", "envs[0]", "NAME=value"},
		{"an env name cannot start with a digit", "bad-env-name", "envs[0]", "not a valid variable name"},
		{"an unknown back-end is rejected", "unknown-backend", "backend", "unknown back-end"},
		{"the diagonal of the RDMA matrix must be null", "diagonal-not-null", "hosts[0].rdma[0]", "must be null"},
		{"an RDMA row needs one cell per host", "short-rdma-row", "hosts[0].rdma", "one per host"},
		{"jaccl needs a device between every pair", "jaccl-missing-link", "hosts[0].rdma[1]", "needs an RDMA device from a to b"},
		{"a device must be named like rdma_en3", "bad-device-name", "hosts[0].rdma[1][1]", `"en5" is not an RDMA device`},
		{"an RDMA cell must be a string or list", "bad-cell-type", "hosts[0].rdma[1]", "must be null, a device name"},
		{"jaccl needs rank 0's LAN address", "jaccl-no-coordinator", "hosts[0].ips", "LAN IPv4"},
		{"jaccl needs the device matrix", "jaccl-no-matrix", "hosts[0].rdma", "device matrix"},
		{"jaccl refuses one machine listed twice", "jaccl-duplicate-host", "hosts[1]", "duplicates hosts[0]"},
		{"ring needs an address on every host", "ring-host-without-ip", "hosts[1].ips", "ring back-end"},
		{"nccl needs rank 0's address", "nccl-no-ip", "hosts[0].ips", "nccl needs"},
		{"broken JSON reports the byte offset", "not-json", "", "invalid JSON at byte"},
		{"ips must be a list", "ips-not-list", "hosts[0].ips", "must be a list"},
		{"jaccl-ring needs a device to each ring neighbour", "jaccl-ring-missing-neighbour", "hosts[0].rdma[2]", "jaccl-ring needs"},
	}
	entries, err := os.ReadDir("testdata/bad")
	require.NoError(t, err)
	require.Len(t, entries, len(tests), "every malformed file in testdata/bad has a row in this table")

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata/bad", tt.file+".json")
			hf, err := ReadHostfile(path)
			require.Error(t, err)
			assert.Nil(t, hf)

			var he *HostfileError
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tt.field, he.Field)
			assert.Contains(t, he.Reason, tt.reason)
			assert.Equal(t, path, he.File)
			assert.ErrorIs(t, err, ErrHostfile)
			if tt.field != "" {
				assert.Contains(t, err.Error(), tt.field)
			}
		})
	}
}

func TestValidateChecksTheBackendALauncherOverridesWith(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-local-ring.json")
	require.NoError(t, err)

	assert.NoError(t, hf.Validate(Ring), "two ring ranks may share a machine")
	err = hf.Validate(JACCL)
	var he *HostfileError
	require.ErrorAs(t, err, &he)
	assert.Equal(t, "hosts[0].rdma", he.Field)
}

func TestWriteHostfileRoundTrips(t *testing.T) {
	for _, file := range []string{"testdata/hosts-seed.json", "testdata/hosts-jaccl-ring.json", "testdata/hosts-local-ring.json"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			hf, err := ReadHostfile(file)
			require.NoError(t, err)
			out := filepath.Join(t.TempDir(), "hosts.json")
			require.NoError(t, WriteHostfile(out, hf))
			back, err := ReadHostfile(out)
			require.NoError(t, err)
			assert.Equal(t, hf, back)
		})
	}
}

func TestWriteHostfileWritesOneDeviceAsAString(t *testing.T) {
	hf := &Hostfile{Backend: JACCL, Hosts: []Host{
		{SSH: "a", IPs: []string{"10.0.0.1"}, RDMA: []Devices{nil, {"rdma_en3"}}},
		{SSH: "b", IPs: []string{"10.0.0.2"}, RDMA: []Devices{{"rdma_en3", "rdma_en5"}, nil}},
	}}
	b, err := hf.MarshalJSON()
	require.NoError(t, err)
	assert.JSONEq(t, `{"backend":"jaccl","envs":[],"hosts":[
		{"ssh":"a","ips":["10.0.0.1"],"rdma":[null,"rdma_en3"]},
		{"ssh":"b","ips":["10.0.0.2"],"rdma":[["rdma_en3","rdma_en5"],null]}]}`, string(b))
}

// MLX's own launcher must read what WriteHostfile writes.
func TestWriteHostfileIsReadByMLXLaunch(t *testing.T) {
	hf, err := ReadHostfile("testdata/hosts-seed.json")
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "hosts.json")
	require.NoError(t, WriteHostfile(out, hf))

	got := testenv.RunPython(t, `
import sys, json
from mlx._distributed_utils.common import Hostfile
h = Hostfile.from_file(sys.argv[1])
print(json.dumps(h.to_json(), sort_keys=True))
`, out)
	want, err := os.ReadFile("testdata/hosts-seed.json")
	require.NoError(t, err)
	assert.JSONEq(t, string(want), strings.TrimSpace(string(got)))
}

func TestParseBackend(t *testing.T) {
	tests := []struct {
		in      string
		want    Backend
		mlxName string
	}{
		{"jaccl", JACCL, "jaccl"},
		{"jaccl-ring", JACCLRing, "jaccl"},
		{"ring", Ring, "ring"},
		{"MPI", MPI, "mpi"},
		{"nccl", NCCL, "nccl"},
		{"any", Any, "any"},
	}
	for _, tt := range tests {
		t.Run(tt.in+" parses", func(t *testing.T) {
			b, err := ParseBackend(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, b)
			assert.Equal(t, tt.mlxName, b.MLXName())
			assert.Equal(t, string(tt.want), b.String())
		})
	}
	_, err := ParseBackend("rdma")
	assert.True(t, errors.Is(err, ErrUnknownBackend))
}

func FuzzParseHostfile(f *testing.F) {
	for _, dir := range []string{"testdata", "testdata/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range files {
			b, err := os.ReadFile(p)
			if err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		hf, err := ParseHostfile(data)
		if err != nil {
			var he *HostfileError
			if !errors.As(err, &he) {
				t.Fatalf("error %v is not a *HostfileError", err)
			}
			return
		}
		// Whatever parses must survive a round trip unchanged.
		b, err := hf.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseHostfile(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		// An empty "rdma" list means no matrix, as an absent one does, and
		// both are written without one.
		for i := range hf.Hosts {
			if len(hf.Hosts[i].RDMA) == 0 {
				hf.Hosts[i].RDMA = nil
			}
		}
		if !reflect.DeepEqual(hf, again) {
			t.Fatalf("round trip through %s changed the hostfile:\n%#v\n%#v", b, hf, again)
		}
	})
}
