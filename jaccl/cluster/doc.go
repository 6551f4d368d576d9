// Package cluster describes distributed MLX jobs without loading MLX: the
// hostfile that describes a cluster, the environment every rank's back-end
// reads, a launcher that starts the ranks, and errors that say how to fix a
// broken RDMA setup. Package jaccl, above it, joins the group.
//
// # The contract is the environment
//
// MLX's distributed back-ends take no arguments: mx.distributed.init reads
// MLX_RANK and a few back-end specific variables, some of which name JSON
// files (MLX_HOSTFILE for ring, MLX_IBV_DEVICES for jaccl). This package
// produces exactly what mlx.launch produces, so either launcher can start
// either kind of program: Launch runs Python MLX scripts, and mlx.launch runs
// Go programs built on this module. NewRankEnv computes one rank's variables
// and file contents without touching the disk; RankEnv.Write materialises the
// files for a local rank, and RemoteScript turns them into the shell command a
// remote host runs over ssh. Every back-end also gets MLX_WORLD_SIZE, so a
// program can tell that a launcher meant N ranks when init quietly returned a
// group of one (CheckWorldSize).
//
// # Groups
//
// A rank joins its group with jaccl.Init, which reads what this package's
// launcher set: ErrInitTimeout, DefaultInitTimeout, InitTimeoutEnv and
// JoinedEnv are the contract between the two, and LocalRanks tells how many
// ranks share this machine.
//
// # Hostfiles
//
// ReadHostfile accepts mlx.launch's format, an object with "backend",
// "envs" and "hosts" or a bare list of hosts, and validates it before any
// process starts: unknown fields, a malformed RDMA matrix, a missing
// coordinator address, device names that are not rdma_*. Each problem is a
// *HostfileError naming the JSON field ("hosts[1].rdma[0]"). jaccl's
// coordinator, hosts[0].ips[0], must be rank 0's LAN address: the Thunderbolt
// links carry RDMA, not the TCP side channel.
//
// # Back-ends
//
// jaccl (RDMA over Thunderbolt 5, macOS) is the back-end this module is for;
// jaccl-ring is jaccl with MLX_JACCL_RING=1; ring (TCP) runs anywhere and is
// what the tests use; nccl (CUDA) pins each rank of a host to its own GPU with
// CUDA_VISIBLE_DEVICES, as mlx.launch does, and was checked on two H200s; mpi is left to
// mpirun. Nothing in this package falls back from jaccl to ring on its own.
//
// # The launcher
//
// Launch starts rank 0 first (jaccl's other ranks retry its coordinator for
// about 15 seconds), prefixes every output line with its rank, and treats the
// job as one unit: the first rank to fail stops the others (SIGTERM to each
// rank's process group, SIGKILL after a grace period) and its exit status
// becomes the launcher's. Local ranks mark when they join their group, so
// the launcher names the ranks that never joined, and stops a job whose
// ranks are all stuck in start-up once the init timeout has passed. Ranks on 127.0.0.1 or localhost run directly, on
// ports the kernel reports free; other hosts are reached with ssh -tt, so
// that stopping ssh hangs up the remote rank.
//
// # Errors that say what to do
//
// Explain and ExplainText recognise MLX's failure messages, "Changing queue
// pair to RTR failed with errno 22" above all, and return a *BackendError
// whose Fix gives the remedy (take the Thunderbolt interfaces out of bridge0,
// enable RDMA in Recovery, start rank 0 first). Launch attaches such a hint to
// the *RankError of a rank whose output contained one.
package cluster
