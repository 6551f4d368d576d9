package netcfg_test

import (
	"fmt"
	"os"

	"github.com/mlxdist/mlxdist/netcfg"
)

func ExampleMakePlan() {
	c, err := netcfg.ParseCluster([]byte(`{"nodes": [
	  {"name": "hwStudio1", "ssh": "hwStudio1.local", "lan": {"interface": "en1", "address": "192.168.0.105/24"},
	   "thunderbolt": [{"interface": "en3", "rdma": "rdma_en3"}, {"interface": "en5", "rdma": "rdma_en5"}],
	   "other": [{"interface": "utun4", "address": "100.101.2.3/32"}], "macos": "26.3", "rdma_enabled": true},
	  {"name": "hwStudio2", "ssh": "hwStudio2.local", "lan": {"interface": "en1", "address": "192.168.0.107/24"},
	   "thunderbolt": [{"interface": "en3", "rdma": "rdma_en3"}, {"interface": "en5", "rdma": "rdma_en5"}],
	   "macos": "26.3", "rdma_enabled": true, "routes": ["10.10.0.0/24"]}],
	 "cables": [{"a": "hwStudio1:en3", "b": "hwStudio2:en3"}, {"a": "hwStudio1:en5", "b": "hwStudio2:en5"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := netcfg.MakePlan(c, netcfg.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	p.WriteText(os.Stdout)
	// Output:
	// # backend jaccl, pool 10.10.0.0/16
	// # cable hwStudio1:en3 <-> hwStudio2:en3: 10.10.1.0/30 (10.10.1.1, 10.10.1.2)
	// # cable hwStudio1:en5 <-> hwStudio2:en5: 10.10.2.0/30 (10.10.2.1, 10.10.2.2)
	// # skipped 10.10.0.0/30: overlaps route 10.10.0.0/24 on hwStudio2
	//
	// ## hwStudio1
	// sudo ifconfig bridge0 down
	// sudo ifconfig bridge0 deletem en3
	// sudo ifconfig bridge0 deletem en5
	// sudo ifconfig en3 inet 10.10.1.1/30 up
	// sudo ifconfig en5 inet 10.10.2.1/30 up
	//
	// ## hwStudio2
	// sudo ifconfig bridge0 down
	// sudo ifconfig bridge0 deletem en3
	// sudo ifconfig bridge0 deletem en5
	// sudo ifconfig en3 inet 10.10.1.2/30 up
	// sudo ifconfig en5 inet 10.10.2.2/30 up
}
