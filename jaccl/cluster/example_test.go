package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/mlxdist/mlxdist/jaccl/cluster"
)

func ExampleLaunch() {
	err := cluster.Launch(context.Background(), cluster.LaunchConfig{
		Command: []string{"./connectivity"},
		N:       2,
	})
	var re *cluster.RankError
	if errors.As(err, &re) {
		fmt.Fprintln(os.Stderr, err) // names the rank, its status and any known cause
		os.Exit(re.ExitStatus())
	}
	if err != nil {
		log.Fatal(err)
	}
}

// Read mlx.launch's hostfile, and see what rank 1 of its jaccl job gets in
// its environment.
func ExampleParseHostfile() {
	hf, err := cluster.ParseHostfile([]byte(`{
		"backend": "jaccl",
		"hosts": [
			{"ssh": "studio1.local", "ips": ["192.168.1.10"], "rdma": [null, ["rdma_en3", "rdma_en5"]]},
			{"ssh": "studio2.local", "ips": ["192.168.1.11"], "rdma": [["rdma_en3", "rdma_en5"], null]}
		]
	}`))
	if err != nil {
		log.Fatal(err) // a *cluster.HostfileError names the field: hosts[1].rdma[1]: must be null
	}
	fmt.Println(hf.Backend, len(hf.Hosts), "hosts;", "rank 0 reaches rank 1 over", hf.DeviceMatrix()[0][1])
	env, err := cluster.NewRankEnv(hf, 1, cluster.EnvOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range env.Vars {
		fmt.Println(v)
	}
	for _, f := range env.Files {
		fmt.Printf("%s=<file: %s>\n", f.Name, bytes.TrimSpace(f.Content))
	}
	// Output:
	// jaccl 2 hosts; rank 0 reaches rank 1 over [rdma_en3 rdma_en5]
	// MLX_JACCL_COORDINATOR=192.168.1.10:32323
	// MLX_WORLD_SIZE=2
	// MLX_RANK=1
	// MLX_IBV_DEVICES=<file: [[null,["rdma_en3","rdma_en5"]],[["rdma_en3","rdma_en5"],null]]>
}

// Turn MLX's terse RDMA failure into the cause and the fix.
func ExampleExplain() {
	err := cluster.Explain(errors.New("[jaccl] Changing queue pair to RTR failed with errno 22"))
	var be *cluster.BackendError
	if errors.As(err, &be) {
		fmt.Println(be.Kind)
		fmt.Println("fix:", be.Fix)
	}
	// Output:
	// RDMA queue pair could not reach RTR: the Thunderbolt interface is still a member of bridge0, bridge0 is up, or the interface has no IPv4 address (so no IPv4-mapped GID)
	// fix: on every node: sudo ifconfig bridge0 down; sudo ifconfig bridge0 deletem enX (each Thunderbolt interface); give each enX its own /30 (sudo ifconfig en3 10.10.0.1/30 up), outside the Wi-Fi subnet and without route commands; or run tbnet plan, then tbnet apply
}
