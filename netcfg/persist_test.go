package netcfg_test

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/netcfg"
	"github.com/mlxdist/mlxdist/netcfg/netcfgtest"
)

// plistDict reads the top-level dict of a property list into key → raw
// element text, failing on malformed XML.
func plistDict(t *testing.T, b []byte) map[string]string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	out := map[string]string{}
	var key, elem string
	depth := 0
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "the plist must be well-formed XML")
		switch v := tok.(type) {
		case xml.StartElement:
			depth++
			elem = v.Name.Local
			text.Reset()
			if depth == 3 && (elem == "true" || elem == "false") {
				out[key] = elem
			}
			if depth == 3 && elem == "array" {
				out[key] = ""
			}
		case xml.CharData:
			text.Write(v)
		case xml.EndElement:
			switch {
			case depth == 3 && v.Name.Local == "key":
				key = text.String()
			case depth == 3 && v.Name.Local == "string":
				out[key] = text.String()
			case depth == 4 && v.Name.Local == "string":
				out[key] += text.String() + " "
			}
			depth--
		}
	}
	return out
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "daemon.plist")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

func TestDaemonPlistIsAWellFormedLaunchDaemon(t *testing.T) {
	b, err := netcfg.Daemon{Node: "hwStudio1"}.Plist()
	require.NoError(t, err)
	d := plistDict(t, b)
	assert.Equal(t, "com.mlxdist.tbnet", d["Label"])
	assert.Equal(t, "/usr/local/bin/tbnet reconcile --plan /etc/mlxdist/tbnet-plan.json --node hwStudio1 ", d["ProgramArguments"])
	assert.Equal(t, "true", d["RunAtLoad"])
	assert.True(t, strings.HasPrefix(d["StandardOutPath"], "/var/log/"))
	assert.True(t, strings.HasPrefix(d["StandardErrorPath"], "/var/log/"))
	assert.NotContains(t, d, "StartInterval")
	assert.NotContains(t, d, "KeepAlive")

	_, err = netcfg.Daemon{}.Plist()
	assert.Error(t, err, "a daemon needs its node")

	b, err = netcfg.Daemon{Node: `a<b&"c"`}.Plist()
	require.NoError(t, err)
	assert.Contains(t, plistDict(t, b)["ProgramArguments"], `a<b&"c"`)
}

func TestDaemonPlistReadsWithPythonPlistlib(t *testing.T) {
	testenv.Python(t)
	b, err := netcfg.Daemon{Node: "hwStudio2"}.Plist()
	require.NoError(t, err)
	out := testenv.RunPython(t, `
import plistlib, sys, json
d = plistlib.loads(open(sys.argv[1], "rb").read())
print(json.dumps(d, sort_keys=True))
`, writeTemp(t, b))
	assert.JSONEq(t, `{"Label": "com.mlxdist.tbnet",
	  "ProgramArguments": ["/usr/local/bin/tbnet", "reconcile", "--plan", "/etc/mlxdist/tbnet-plan.json", "--node", "hwStudio2"],
	  "RunAtLoad": true,
	  "StandardErrorPath": "/var/log/com.mlxdist.tbnet.err.log",
	  "StandardOutPath": "/var/log/com.mlxdist.tbnet.log"}`, string(out))
}

func TestDaemonInstallCommands(t *testing.T) {
	d := netcfg.Daemon{Node: "hwStudio1"}
	var install []string
	for _, c := range d.InstallCommands("/tmp/p.plist", "/tmp/plan.json") {
		install = append(install, c.String())
	}
	assert.Contains(t, install, "launchctl bootstrap system /Library/LaunchDaemons/com.mlxdist.tbnet.plist")
	assert.Equal(t, "launchctl bootout system/com.mlxdist.tbnet", d.UninstallCommands()[0].String())
}

// bootRunner is a node at boot: `ifconfig en3` fails until the interface
// has appeared after some polls; everything else replays the seed node.
type bootRunner struct {
	netcfgtest.ReplayRunner
	mu      sync.Mutex
	missing int
	polls   int
}

func (b *bootRunner) Run(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	if name == "ifconfig" && len(args) == 1 && args[0] != "-a" {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.polls++
		if b.missing > 0 {
			b.missing--
			return nil, errors.New("ifconfig: interface " + args[0] + " does not exist")
		}
		return []byte(args[0] + ": flags=8863<UP>\n"), nil
	}
	return b.ReplayRunner.Run(ctx, node, name, args...)
}

// fakeClock advances only when the poll loop waits on it.
type fakeClock struct {
	now    time.Time
	waited []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	c.waited = append(c.waited, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func TestReconcileWaitsForInterfacesThenApplies(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)

	t.Run("interfaces that appear late are waited for", func(t *testing.T) {
		r := &bootRunner{ReplayRunner: netcfgtest.ReplayRunner{Dir: "testdata/seed"}, missing: 3}
		clk := &fakeClock{now: time.Unix(0, 0)}
		res, err := netcfg.Reconcile(context.Background(), r, p, "hwStudio2", netcfg.ReconcileOptions{
			Apply: true, Poll: time.Second, Timeout: time.Minute, Now: clk.Now, After: clk.After})
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{time.Second, time.Second, time.Second}, clk.waited)
		assert.Equal(t, 5, r.polls, "three failures on en3, then en3 and en5")
		assert.Len(t, r.MutatingCalls(), 5)
		assert.Len(t, res.Commands["hwStudio2"], 5)
		for _, call := range r.MutatingCalls() {
			assert.Equal(t, "hwStudio2", call.Node)
		}
	})
	t.Run("an interface that never appears times out with its name", func(t *testing.T) {
		r := &bootRunner{ReplayRunner: netcfgtest.ReplayRunner{Dir: "testdata/seed"}, missing: 1 << 30}
		clk := &fakeClock{now: time.Unix(0, 0)}
		_, err := netcfg.Reconcile(context.Background(), r, p, "hwStudio1", netcfg.ReconcileOptions{
			Apply: true, Poll: 2 * time.Second, Timeout: 10 * time.Second, Now: clk.Now, After: clk.After})
		var te *netcfg.InterfaceTimeoutError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "en3", te.Interface)
		assert.Empty(t, r.MutatingCalls())
	})
	t.Run("a node not in the plan is refused", func(t *testing.T) {
		_, err := netcfg.Reconcile(context.Background(), &netcfgtest.ReplayRunner{Dir: "testdata/seed"}, p, "hwStudio9", netcfg.ReconcileOptions{})
		assert.ErrorContains(t, err, "not in the plan")
	})
}
