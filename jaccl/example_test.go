package jaccl_test

import (
	"context"
	"fmt"
	"log"

	"github.com/mlxdist/mlxdist/jaccl"
)

// The seed's connectivity test: every rank all-sums rank+1. Run it as every
// rank of a job, under `launch -n 2 -- ./prog` or a hostfile.
func ExampleInit() {
	ctx := context.Background()
	g, err := jaccl.Init(ctx, jaccl.Options{Backend: jaccl.JACCL, Strict: true})
	if err != nil {
		log.Fatal(err) // a known RDMA failure is a *jaccl.BackendError with its fix
	}
	defer g.Close()
	sum, err := jaccl.AllSumSlice(ctx, g, []float32{float32(g.Rank()) + 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("[Rank %d/%d] all_sum result: %.1f\n", g.Rank(), g.Size(), sum[0])
}

// Start two ranks of a program on this machine over ring, their output
// prefixed with the rank, and pass a failed rank's exit status on.
