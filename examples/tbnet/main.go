// Command tbnet sets up the Thunderbolt network of an MLX jaccl cluster:
// discover the nodes, plan one /30 per cable, apply it idempotently, verify,
// persist it as a LaunchDaemon, and diagnose jaccl errors.
//
//	tbnet discover --hosts hwStudio1.local,hwStudio2.local --out cluster.json --state state.json
//	tbnet plan --cluster cluster.json --out plan.json --hostfile hosts.json
//	tbnet apply --plan plan.json --snapshot snap.json --apply
//	tbnet verify --plan plan.json
//
// Nothing changes a machine without --apply (reconcile, which the boot-time
// daemon runs, applies unless --dry-run).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/mlxdist/mlxdist/internal/atomicfile"
	"github.com/mlxdist/mlxdist/netcfg"
)

const usage = `usage: tbnet COMMAND [flags]

commands:
  discover   read the nodes and write a cluster description (JSON)
  plan       plan addresses, commands and the mlx.launch hostfile (offline)
  apply      run a plan's missing commands on the nodes (dry run unless --apply)
  verify     check addresses, bridges, pings and RDMA devices
  persist    write the LaunchDaemon that re-applies the plan at boot
  reconcile  wait for the interfaces and apply one node's plan (run at boot)
  rollback   undo what changed since a snapshot (dry run unless --apply)
  diagnose   explain a jaccl error from the discovered state

example:
  tbnet plan --cluster cluster.json --backend jaccl --hostfile hosts.json

Run "tbnet COMMAND --help" for a command's flags.
`

var examples = map[string]string{
	"discover":  "tbnet discover --hosts hwStudio1.local,hwStudio2.local --out cluster.json --state state.json",
	"plan":      "tbnet plan --cluster cluster.json --backend jaccl --pool 10.10.0.0/16 --out plan.json --hostfile hosts.json",
	"apply":     "tbnet apply --plan plan.json --snapshot snap.json --apply",
	"verify":    "tbnet verify --plan plan.json",
	"persist":   "tbnet persist --plan plan.json --node hwStudio1 --out daemon/",
	"reconcile": "tbnet reconcile --plan /etc/mlxdist/tbnet-plan.json --node hwStudio1",
	"rollback":  "tbnet rollback --snapshot snap.json --apply",
	"diagnose":  "tbnet diagnose --state state.json --error 'Changing queue pair to RTR failed with errno 22'",
}

type runFunc func(ctx context.Context, args []string, stdout io.Writer) error

// commands is filled in init: the run functions read examples through
// newFlags, and a map literal referring to them would be an initialisation cycle.
var commands map[string]runFunc

func init() {
	commands = map[string]runFunc{
		"discover":  runDiscover,
		"plan":      runPlan,
		"apply":     runApply,
		"verify":    runVerify,
		"persist":   runPersist,
		"reconcile": runReconcile,
		"rollback":  runRollback,
		"diagnose":  runDiagnose,
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tbnet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, usage)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return flag.ErrHelp
	}
	c, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q (run tbnet --help)", args[0])
	}
	return c(ctx, args[1:], stdout)
}

func newFlags(name, what string) *flag.FlagSet {
	fs := flag.NewFlagSet("tbnet "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tbnet %s [flags]\n\n%s\n\nexample:\n  %s\n\nflags:\n", name, what, examples[name])
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func writeJSON(path string, stdout io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "" || path == "-" {
		_, err = stdout.Write(b)
		return err
	}
	return atomicfile.WriteFile(path, b, 0o666)
}

func readPlan(path string) (*netcfg.Plan, error) {
	if path == "" {
		return nil, errors.New("--plan is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return netcfg.ReadPlan(f)
}

// runner picks where commands run: this machine, or each node over ssh
// using the hostfile's ssh names.
func runner(local, sudo bool, p *netcfg.Plan) netcfg.Runner {
	if local {
		return netcfg.ExecRunner{}
	}
	hosts := map[string]string{}
	if p != nil {
		for i, n := range p.Nodes {
			if i < len(p.Hostfile.Hosts) {
				hosts[n] = p.Hostfile.Hosts[i].SSH
			}
		}
	}
	return netcfg.SSHRunner{Hosts: hosts, Sudo: sudo, Options: []string{"-o", "BatchMode=yes", "-o", "ConnectTimeout=5"}}
}

// needMacOS refuses to run what on another system; remote says how the
// command reaches the nodes from elsewhere, "" when it cannot.
func needMacOS(what, remote string) error {
	if runtime.GOOS == "darwin" {
		return nil
	}
	if remote == "" {
		return fmt.Errorf("%s needs macOS (this is %s); run it on the node itself", what, runtime.GOOS)
	}
	return fmt.Errorf("%s needs macOS (this is %s); run it on a node, or %s", what, runtime.GOOS, remote)
}

func runDiscover(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("discover", "Read each node (system_profiler, networksetup, ifconfig, netstat, ibv_devices,\nrdma_ctl, sw_vers) and write the cluster description; cables are found by\nThunderbolt domain UUID.")
	hosts := fs.String("hosts", "", "comma-separated ssh hosts of the nodes, in rank order")
	local := fs.Bool("local", false, "discover only this Mac")
	out := fs.String("out", "", "write the description here instead of standard output")
	state := fs.String("state", "", "also write the raw discovered state (for diagnose, rollback)")
	if err := parse(fs, args); err != nil {
		return err
	}
	var nodes []string
	ssh := map[string]string{}
	var r netcfg.Runner
	switch {
	case *local && *hosts != "":
		return errors.New("use --local or --hosts, not both")
	case *local:
		if err := needMacOS("discover --local", "use --hosts to reach the nodes over ssh"); err != nil {
			return err
		}
		name, _ := os.Hostname()
		name = strings.TrimSuffix(name, ".local")
		nodes, ssh[name], r = []string{name}, name+".local", netcfg.ExecRunner{}
	case *hosts != "":
		for _, h := range strings.Split(*hosts, ",") {
			h = strings.TrimSpace(h)
			name := strings.TrimSuffix(h, ".local")
			nodes = append(nodes, name)
			ssh[name] = h
		}
		r = netcfg.SSHRunner{Hosts: ssh, Options: []string{"-o", "BatchMode=yes", "-o", "ConnectTimeout=5"}}
	default:
		return errors.New("give --hosts h1,h2,... or --local")
	}
	states := make([]*netcfg.NodeState, 0, len(nodes))
	for _, n := range nodes {
		s, err := netcfg.Discover(ctx, r, n)
		if err != nil {
			return err
		}
		s.SSH = ssh[n]
		states = append(states, s)
	}
	if *state != "" {
		if err := writeJSON(*state, stdout, states); err != nil {
			return err
		}
	}
	c, err := netcfg.Describe(states)
	if err != nil {
		return err
	}
	return writeJSON(*out, stdout, c)
}

type envList []string

func (e *envList) String() string { return strings.Join(*e, ",") }

func (e *envList) Set(v string) error {
	if name, _, ok := strings.Cut(v, "="); !ok || name == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	*e = append(*e, v)
	return nil
}

func runPlan(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("plan", "Plan one /30 per cable, the per-node commands and the mlx.launch hostfile,\noffline, from a cluster description. Exits 1 with the reason when no safe plan exists.")
	cluster := fs.String("cluster", "", "cluster description (JSON) from discover or written by hand")
	backend := fs.String("backend", "jaccl", "jaccl (full mesh), jaccl-ring (ring) or ring (TCP over Thunderbolt)")
	pool := fs.String("pool", netcfg.DefaultPool.String(), "private IPv4 pool the cable /30s come from (left at the default, the next free private pool is taken when it is full)")
	hostfile := fs.String("hostfile", "", "write the mlx.launch hostfile here")
	out := fs.String("out", "", "write the plan (JSON, for apply/verify/persist) here")
	asJSON := fs.Bool("json", false, "print the plan as JSON instead of commands")
	verbose := fs.Bool("verbose", false, "when the cluster is not ready, list every problem on its own line")
	var envs envList
	fs.Var(&envs, "env", "KEY=VALUE for the hostfile's envs (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cluster == "" {
		return errors.New("--cluster is required")
	}
	f, err := os.Open(*cluster)
	if err != nil {
		return err
	}
	c, err := netcfg.ReadCluster(f)
	f.Close()
	if err != nil {
		return err
	}
	pfx, err := netip.ParsePrefix(*pool)
	if err != nil {
		return fmt.Errorf("--pool %q is not a CIDR prefix", *pool)
	}
	var opts netcfg.Options
	opts.Backend, opts.Envs = netcfg.Backend(*backend), envs
	if *pool != netcfg.DefaultPool.String() {
		// Left at its default, the pool may give way to the next free
		// private one; given by hand, it is kept or refused.
		opts.Pool = pfx
	}
	p, err := netcfg.MakePlan(c, opts)
	var pf *netcfg.PreflightError
	if errors.As(err, &pf) && *verbose {
		for _, prob := range pf.Problems {
			fmt.Fprintln(os.Stderr, "tbnet: not ready:", prob)
		}
	}
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writeJSON(*out, stdout, p); err != nil {
			return err
		}
	}
	if *hostfile != "" {
		if err := writeJSON(*hostfile, stdout, p.Hostfile); err != nil {
			return err
		}
	}
	if *asJSON {
		return writeJSON("", stdout, p)
	}
	if err := p.WriteText(stdout); err != nil {
		return err
	}
	if *hostfile == "" {
		fmt.Fprintln(stdout, "\n# hostfile")
		return writeJSON("", stdout, p.Hostfile)
	}
	return nil
}

func runApply(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("apply", "Compare each node with the plan and run only the missing commands\n(none on a converged node). Prints them and changes nothing unless --apply.")
	planPath := fs.String("plan", "", "plan `FILE` written by tbnet plan --out")
	apply := fs.Bool("apply", false, "run the commands (otherwise a dry run)")
	snap := fs.String("snapshot", "", "save the state before changes here (for rollback)")
	local := fs.Bool("local", false, "run on this Mac only (with --node)")
	node := fs.String("node", "", "apply only this node")
	if err := parse(fs, args); err != nil {
		return err
	}
	p, err := readPlan(*planPath)
	if err != nil {
		return err
	}
	if *local && *node == "" {
		return errors.New("--local needs --node")
	}
	opts := netcfg.ApplyOptions{Apply: *apply, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	if *node != "" {
		opts.Nodes = []string{*node}
	}
	res, err := netcfg.Apply(ctx, runner(*local, true, p), p, opts)
	if res != nil && *snap != "" {
		if werr := writeJSON(*snap, stdout, res.Snapshot); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	printCommands(stdout, p.Nodes, res.Commands, *apply)
	for _, n := range res.Notes {
		fmt.Fprintln(stdout, "# note:", n)
	}
	return nil
}

func printCommands(w io.Writer, nodes []string, cmds map[string][]netcfg.Command, applied bool) {
	verb := "would run"
	if applied {
		verb = "ran"
	}
	for _, n := range nodes {
		if _, ok := cmds[n]; !ok {
			continue
		}
		fmt.Fprintf(w, "## %s (%s %d commands)\n", n, verb, len(cmds[n]))
		for _, c := range cmds[n] {
			fmt.Fprintf(w, "sudo %s\n", c)
		}
	}
	if len(cmds) == 0 {
		fmt.Fprintln(w, "# nothing to do: every node already matches")
	}
}

func runVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("verify", "Check that planned addresses are present, no Thunderbolt port is in a bridge,\neach /30 peer answers a ping, and the RDMA devices exist. Exits 1 on any failure.")
	planPath := fs.String("plan", "", "plan `FILE` written by tbnet plan --out")
	local := fs.Bool("local", false, "run on this Mac (a one-node view)")
	asJSON := fs.Bool("json", false, "print findings as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	p, err := readPlan(*planPath)
	if err != nil {
		return err
	}
	findings, err := netcfg.Verify(ctx, runner(*local, false, p), p)
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range findings {
		if !f.OK {
			failed++
		}
	}
	if *asJSON {
		if err := writeJSON("", stdout, findings); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			mark := "ok  "
			if !f.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(stdout, "%s %-10s %-8s %s\n", mark, f.Node, f.Check, f.Detail)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d checks failed", failed, len(findings))
	}
	return nil
}

func runPersist(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("persist", "Write the LaunchDaemon plist and the plan for one node, and print the\ncommands that install it (run once at boot; no periodic re-runs).")
	planPath := fs.String("plan", "", "plan `FILE` written by tbnet plan --out")
	node := fs.String("node", "", "the node this daemon runs on")
	out := fs.String("out", ".", "directory to write the plist and plan into")
	binary := fs.String("binary", netcfg.DaemonBinary, "where tbnet is installed on the node")
	uninstall := fs.Bool("uninstall", false, "print the uninstall commands instead")
	if err := parse(fs, args); err != nil {
		return err
	}
	d := netcfg.Daemon{Node: *node, Binary: *binary}
	if *uninstall {
		for _, c := range d.UninstallCommands() {
			fmt.Fprintf(stdout, "sudo %s\n", c)
		}
		return nil
	}
	p, err := readPlan(*planPath)
	if err != nil {
		return err
	}
	if *node == "" {
		return fmt.Errorf("--node is required (one of %s)", strings.Join(p.Nodes, ", "))
	}
	if !slices.Contains(p.Nodes, *node) {
		return fmt.Errorf("--node %s is not in the plan; give one of %s", *node, strings.Join(p.Nodes, ", "))
	}
	plist, err := d.Plist()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	plistPath := filepath.Join(*out, netcfg.DaemonLabel+".plist")
	planCopy := filepath.Join(*out, "tbnet-plan.json")
	if err := atomicfile.WriteFile(plistPath, plist, 0o644); err != nil {
		return err
	}
	if err := writeJSON(planCopy, stdout, p); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# wrote %s and %s; copy them to %s and run there:\n", plistPath, planCopy, *node)
	for _, c := range d.InstallCommands(filepath.Base(plistPath), filepath.Base(planCopy)) {
		fmt.Fprintf(stdout, "sudo %s\n", c)
	}
	return nil
}

func runReconcile(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("reconcile", "Wait for this node's Thunderbolt interfaces to appear, then apply its part of\nthe plan idempotently. The boot-time LaunchDaemon runs this as root.")
	planPath := fs.String("plan", netcfg.DaemonPlanPath, "plan file")
	node := fs.String("node", "", "this node's name in the plan")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the interfaces")
	poll := fs.Duration("poll", 2*time.Second, "how often to look for them")
	dry := fs.Bool("dry-run", false, "only print what would run")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *node == "" {
		return errors.New("--node is required")
	}
	if err := needMacOS("reconcile", ""); err != nil {
		return err
	}
	p, err := readPlan(*planPath)
	if err != nil {
		return err
	}
	res, err := netcfg.Reconcile(ctx, netcfg.ExecRunner{}, p, *node, netcfg.ReconcileOptions{
		Timeout: *timeout, Poll: *poll, Apply: !*dry,
		ApplyOptions: netcfg.ApplyOptions{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))},
	})
	if err != nil {
		return err
	}
	printCommands(stdout, p.Nodes, res.Commands, !*dry)
	return nil
}

func runRollback(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("rollback", "Undo what changed since a snapshot on the Thunderbolt ports: remove added\naddresses, re-add bridge members. Never touches routes. Dry run unless --apply.")
	snapPath := fs.String("snapshot", "", "snapshot `FILE` written by tbnet apply --snapshot")
	planPath := fs.String("plan", "", "plan, for the nodes' ssh names (optional)")
	apply := fs.Bool("apply", false, "run the commands")
	local := fs.Bool("local", false, "run on this Mac")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *snapPath == "" {
		return errors.New("--snapshot is required")
	}
	b, err := os.ReadFile(*snapPath)
	if err != nil {
		return err
	}
	var snap netcfg.Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("reading snapshot %s: %v", *snapPath, err)
	}
	var p *netcfg.Plan
	if *planPath != "" {
		if p, err = readPlan(*planPath); err != nil {
			return err
		}
	}
	cmds, err := netcfg.Rollback(ctx, runner(*local, true, p), snap, *apply)
	if err != nil {
		return err
	}
	var nodes []string
	for _, n := range snap.Nodes {
		nodes = append(nodes, n.Name)
	}
	printCommands(stdout, nodes, cmds, *apply)
	return nil
}

func runDiagnose(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("diagnose", "Explain an MLX / jaccl error using the discovered state: the likely cause and\nthe fix, naming the node and interface.")
	text := fs.String("error", "", "the error text (or give --error-file)")
	file := fs.String("error-file", "", "file holding the error output ('-' for standard input)")
	statePath := fs.String("state", "", "state `FILE` written by tbnet discover --state")
	if err := parse(fs, args); err != nil {
		return err
	}
	msg := *text
	if *file != "" {
		var b []byte
		var err error
		if *file == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(*file)
		}
		if err != nil {
			return err
		}
		msg += "\n" + string(b)
	}
	var states []*netcfg.NodeState
	if *statePath != "" {
		b, err := os.ReadFile(*statePath)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &states); err != nil {
			return fmt.Errorf("reading state %s: %v", *statePath, err)
		}
	}
	if strings.TrimSpace(msg) == "" && len(states) == 0 {
		return errors.New("give --error, --error-file or --state")
	}
	ds := netcfg.Diagnose(msg, states)
	if len(ds) == 0 {
		fmt.Fprintln(stdout, "no known cause found")
		return nil
	}
	for _, d := range ds {
		fmt.Fprintf(stdout, "cause: %s\nfix:   %s\n\n", d.Cause, d.Fix)
	}
	return nil
}
