package netcfg_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/netcfg"
	"github.com/mlxdist/mlxdist/netcfg/netcfgtest"
)

// machines is a cluster whose interfaces change as commands run: each node
// starts from its recorded `ifconfig -a`, a mutating ifconfig command
// changes the parsed interfaces as macOS's ifconfig changes the real ones,
// and `ifconfig -a` renders them back. Every other command is replayed.
// The failAt-th mutating command (from 1; 0 for none) fails as ifconfig
// does, changing nothing.
type machines struct {
	replay    *netcfgtest.ReplayRunner
	ifs       map[string][]netcfg.Interface
	failAt    int
	mutations int
	ran       []string
}

func newMachines(t *testing.T, dir string, nodes ...string) *machines {
	t.Helper()
	m := &machines{replay: &netcfgtest.ReplayRunner{Dir: dir}, ifs: map[string][]netcfg.Interface{}}
	for _, n := range nodes {
		ifs, err := netcfg.ReadInterfaces(context.Background(), m.replay, n)
		require.NoError(t, err)
		again, err := netcfg.ParseIfconfig(renderIfconfig(ifs))
		require.NoError(t, err)
		require.Equal(t, ifs, again, "the rendering of %s's interfaces parses back to them", n)
		m.ifs[n] = ifs
	}
	return m
}

// renderIfconfig writes interfaces as `ifconfig -a` shows them, with the
// lines ParseIfconfig reads.
func renderIfconfig(ifs []netcfg.Interface) []byte {
	var b bytes.Buffer
	for _, in := range ifs {
		flags := "8822<BROADCAST,SMART,SIMPLEX,MULTICAST>"
		if in.Up {
			flags = "8863<UP,BROADCAST,SMART,RUNNING,SIMPLEX,MULTICAST>"
		}
		fmt.Fprintf(&b, "%s: flags=%s mtu 1500\n", in.Name, flags)
		for _, a := range in.Addrs {
			fmt.Fprintf(&b, "\tinet %s netmask 0x%08x\n", a.Addr(), ^uint32(0)<<(32-a.Bits()))
		}
		for _, m := range in.Members {
			fmt.Fprintf(&b, "\tmember: %s flags=3<LEARNING,DISCOVER>\n", m)
		}
		status := "inactive"
		if in.Active {
			status = "active"
		}
		fmt.Fprintf(&b, "\tstatus: %s\n", status)
	}
	return b.Bytes()
}

// state is every node's interfaces as `ifconfig -a` would show them now,
// bridge members in name order (their order is the kernel's business).
func (m *machines) state(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for n, ifs := range m.ifs {
		parsed, err := netcfg.ParseIfconfig(renderIfconfig(ifs))
		require.NoError(t, err)
		for i := range parsed {
			slices.Sort(parsed[i].Members)
		}
		out[n] = string(renderIfconfig(parsed))
	}
	return out
}

func (m *machines) Run(ctx context.Context, node, name string, args ...string) ([]byte, error) {
	ifs, known := m.ifs[node]
	switch {
	case !known:
	case name == "ifconfig" && slices.Equal(args, []string{"-a"}):
		return renderIfconfig(ifs), nil
	case netcfg.IsMutating(name, args):
		m.mutations++
		cmd := netcfg.Command{Program: name, Args: args}
		if m.mutations == m.failAt {
			return nil, &netcfg.CommandError{Node: node, Command: cmd, Err: errors.New("exit status 1"), Stderr: "ifconfig: ioctl: Device busy"}
		}
		if err := ifconfig(ifs, args); err != nil {
			return nil, &netcfg.CommandError{Node: node, Command: cmd, Err: errors.New("exit status 1"), Stderr: err.Error()}
		}
		m.ran = append(m.ran, node+": "+cmd.String())
		return nil, nil
	}
	return m.replay.Run(ctx, node, name, args...)
}

// ifconfig applies one mutating ifconfig command to the interfaces.
func ifconfig(ifs []netcfg.Interface, args []string) error {
	in := netcfg.FindIface(ifs, args[0])
	if in == nil {
		return fmt.Errorf("ifconfig: interface %s does not exist", args[0])
	}
	switch {
	case len(args) == 2 && args[1] == "up":
		in.Up = true
	case len(args) == 2 && args[1] == "down":
		in.Up = false
	case len(args) == 3 && args[1] == "deletem":
		i := slices.Index(in.Members, args[2])
		if i < 0 {
			return fmt.Errorf("ifconfig: %s is not a member of %s", args[2], args[0])
		}
		in.Members = slices.Delete(in.Members, i, i+1)
	case len(args) == 3 && args[1] == "addm":
		in.Members = append(in.Members, args[2])
	case len(args) == 4 && args[1] == "inet" && args[3] == "up":
		p, err := netip.ParsePrefix(args[2])
		if err != nil {
			return err
		}
		in.Addrs = append(in.Addrs, p)
		in.Up = true
	case len(args) == 4 && args[1] == "inet" && args[3] == "-alias":
		i := slices.IndexFunc(in.Addrs, func(p netip.Prefix) bool { return p.Addr().String() == args[2] })
		if i < 0 {
			return fmt.Errorf("ifconfig: %s has no address %s", args[0], args[2])
		}
		in.Addrs = slices.Delete(in.Addrs, i, i+1)
	default:
		return fmt.Errorf("ifconfig %s: not a command netcfg issues", strings.Join(args, " "))
	}
	return nil
}

func TestApplyThatFailsMidwayRollsBackToTheSnapshot(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)
	nodes := []string{"hwStudio1", "hwStudio2"}

	// The model of ifconfig, run through the whole plan, reaches the
	// recorded converged cluster: it changes what the commands change.
	m := newMachines(t, "testdata/seed", nodes...)
	_, err = netcfg.Apply(context.Background(), m, p, netcfg.ApplyOptions{Apply: true})
	require.NoError(t, err)
	converged := newMachines(t, "testdata/converged", nodes...)
	require.Equal(t, converged.state(t), m.state(t), "the applied plan gives the converged cluster")
	total := m.mutations
	require.Equal(t, 10, total)

	for n := 1; n <= total; n++ {
		t.Run(fmt.Sprintf("mutating command %d of %d fails", n, total), func(t *testing.T) {
			m := newMachines(t, "testdata/seed", nodes...)
			before := m.state(t)
			m.failAt = n
			res, err := netcfg.Apply(context.Background(), m, p, netcfg.ApplyOptions{Apply: true})
			var ce *netcfg.CommandError
			require.ErrorAs(t, err, &ce)
			assert.Contains(t, ce.Error(), "Device busy")
			assert.Len(t, m.ran, n-1, "Apply stops at the failed command")
			require.NotNil(t, res)
			require.Len(t, res.Snapshot.Nodes, 2)

			fs, err := netcfg.Verify(context.Background(), m, p)
			require.NoError(t, err)
			assert.True(t, slices.ContainsFunc(fs, func(f netcfg.Finding) bool { return !f.OK }), "a half-applied plan does not verify")

			m.failAt = 0
			ran := len(m.ran)
			cmds, err := netcfg.Rollback(context.Background(), m, res.Snapshot, true)
			require.NoError(t, err)
			undo := 0
			for _, c := range cmds {
				undo += len(c)
			}
			assert.Equal(t, undo, len(m.ran)-ran, "Rollback runs every command it returns")
			assert.Equal(t, before, m.state(t), "the interfaces are as they were before Apply")

			again, err := netcfg.Rollback(context.Background(), m, res.Snapshot, true)
			require.NoError(t, err)
			assert.Empty(t, again, "a second rollback has nothing left to undo")
		})
	}
}

func TestVerifyReportsAPeerThatDoesNotAnswer(t *testing.T) {
	c, _ := discoverDir(t, "seed", "hwStudio1", "hwStudio2")
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	require.NoError(t, err)

	// The converged cluster, except that hwStudio2 has a recorded answer
	// from 10.10.0.1 only: its ping of 10.10.1.1 has nothing to replay and
	// fails, as a ping of a silent peer does.
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/converged")))
	node2 := filepath.Join(dir, "hwStudio2")
	answer, err := os.ReadFile(filepath.Join(node2, "ping.txt"))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(node2, "ping.txt")))
	require.NoError(t, os.WriteFile(filepath.Join(node2, "ping_-c_1_-t_2_10.10.0.1.txt"), answer, 0o644))

	fs, err := netcfg.Verify(context.Background(), &netcfgtest.ReplayRunner{Dir: dir}, p)
	require.NoError(t, err)
	var failed []netcfg.Finding
	pings := 0
	for _, f := range fs {
		if f.Check == "ping" {
			pings++
		}
		if !f.OK {
			failed = append(failed, f)
		}
	}
	assert.Equal(t, 4, pings)
	require.Len(t, failed, 1, "%+v", fs)
	assert.Equal(t, "hwStudio2", failed[0].Node)
	assert.Equal(t, "ping", failed[0].Check)
	assert.Contains(t, failed[0].Detail, "10.10.1.1 (hwStudio1:en5) does not answer from en5")
}

func TestExecRunnerRunsLocallyAndReportsFailures(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	r := netcfg.ExecRunner{}
	out, err := r.Run(context.Background(), "here", sh, "-c", `printf '%s|' "$0" "$1"`, "it's", "a b")
	require.NoError(t, err)
	assert.Equal(t, "it's|a b|", string(out), "arguments reach the program as they are")

	out, err = r.Run(context.Background(), "here", sh, "-c", "printf partial; echo 'no such bridge' >&2; exit 3")
	var ce *netcfg.CommandError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "here", ce.Node)
	assert.Equal(t, "no such bridge", ce.Stderr)
	assert.Equal(t, "partial", string(out), "the output before the failure comes back")
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.ExitCode())

	t.Setenv("LC_ALL", "de_DE.UTF-8")
	out, err = r.Run(context.Background(), "here", sh, "-c", `printf %s "$LC_ALL"`)
	require.NoError(t, err)
	assert.Equal(t, "C", string(out), "parsed output is asked for in the C locale")

	_, err = r.Run(context.Background(), "here", "netcfg-no-such-program")
	assert.ErrorIs(t, err, exec.ErrNotFound)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = r.Run(ctx, "here", sh, "-c", "exit 0")
	assert.ErrorIs(t, err, context.Canceled)
}

// fakeSSH is an ssh that takes the host before "--" and does with the rest
// what sshd does: joins it with spaces and hands it to a shell, here one
// that prints each word the remote shell would see. Connecting to the host
// "unreachable" fails as ssh does, with status 255.
const fakeSSH = `#!/bin/sh
host=
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do host=$1; shift; done
shift
if [ "$host" = unreachable ]; then
	echo "ssh: connect to host unreachable port 22: Connection refused" >&2
	exit 255
fi
printf 'host=%s\n' "$host"
exec sh -c "printf '[%s]\n' $*"
`

func TestSSHRunnerQuotesEveryArgumentForTheRemoteShell(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	bin := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bin, "ssh"), []byte(fakeSSH), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	words := func(host string, ws ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "host=%s\n", host)
		for _, w := range ws {
			fmt.Fprintf(&b, "[%s]\n", w)
		}
		return b.String()
	}
	tricky := []string{"a b", "it's", `"quoted"`, "$HOME", "`id`", "a;b", "x|y", "*", "", "tab\there", "new\nline", `back\slash`}
	cases := []struct {
		name string
		r    netcfg.SSHRunner
		node string
		cmd  []string
		want string
	}{
		{"every argument arrives as one word, unexpanded", netcfg.SSHRunner{}, "node1", append([]string{"echo"}, tricky...),
			words("node1", append([]string{"echo"}, tricky...)...)},
		{"a node's mapped host is used", netcfg.SSHRunner{Hosts: map[string]string{"hwStudio2": "hwStudio2.local"}}, "hwStudio2",
			[]string{"ifconfig", "-a"}, words("hwStudio2.local", "ifconfig", "-a")},
		{"a mutating command runs under sudo -n", netcfg.SSHRunner{Sudo: true}, "n", []string{"ifconfig", "bridge0", "deletem", "en3"},
			words("n", "sudo", "-n", "ifconfig", "bridge0", "deletem", "en3")},
		{"a reading command runs without sudo", netcfg.SSHRunner{Sudo: true}, "n", []string{"ifconfig", "-a"},
			words("n", "ifconfig", "-a")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := c.r.Run(context.Background(), c.node, c.cmd[0], c.cmd[1:]...)
			require.NoError(t, err)
			assert.Equal(t, c.want, string(out))
		})
	}

	t.Run("a failed connection names the remote command and ssh's message", func(t *testing.T) {
		_, err := netcfg.SSHRunner{}.Run(context.Background(), "unreachable", "ifconfig", "-a")
		var ce *netcfg.CommandError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, netcfg.Command{Program: "ifconfig", Args: []string{"-a"}}, ce.Command)
		assert.Contains(t, ce.Stderr, "Connection refused")
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, 255, ee.ExitCode())
	})
}
