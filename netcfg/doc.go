// Package netcfg sets up the Thunderbolt network of an MLX jaccl cluster as
// a safe plan → apply → verify → persist cycle, in pure Go.
//
// macOS puts every Thunderbolt port into bridge0 at boot, and RDMA cannot
// use a bridged port. The usual cure is typed by hand on each node after
// every boot (bridge0 down, deletem each port, an address per port), and its
// dangerous variants are well known: a `route change` of the LAN gateway
// onto a Thunderbolt interface panicked the kernel, addresses overlapping the
// Wi-Fi subnet cut the node off, and switching network locations dropped the
// Wi-Fi. This package makes the safe way the easy way:
//
//   - Discover reads a node through a Runner (system_profiler, networksetup,
//     ifconfig, netstat, ibv_devices, rdma_ctl, sw_vers) and Describe finds
//     the cables by Thunderbolt domain UUID, hubs included. The resulting
//     Cluster description is JSON a person can also write (ReadCluster).
//   - MakePlan gives each cable its own /30 from a pool (10.10.i.0/30 for
//     cable i by default), skipping any subnet that overlaps a LAN, VPN,
//     Tailscale or routed range on any node and saying which; checks RDMA,
//     macOS versions and topology before anything else; and writes the
//     mlx.launch hostfile. Every plan passes CheckSafe, an allow-list of
//     four ifconfig forms on Thunderbolt ports and bridges: no `route`, no
//     networksetup, nothing on the LAN interface, ever.
//   - Apply compares each node with the plan first and runs only what is
//     missing, so a converged node gets no command; its snapshot feeds
//     Rollback. Verify reports addresses, bridges, pings and RDMA devices.
//   - Daemon writes a LaunchDaemon that runs Reconcile once at boot: wait
//     for the interfaces (polling, with a deadline), then Apply that node.
//   - Diagnose turns a jaccl error text plus the discovered state into a
//     cause and a fix that names the node and interface.
//
// Commands are values (program and arguments), never shell strings, so the
// safety check sees exactly what would run. Everything that touches a
// machine goes through Runner: ExecRunner locally, SSHRunner over ssh,
// netcfgtest.ReplayRunner from recorded output in tests.
package netcfg
