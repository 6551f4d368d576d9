package memguard_test

import (
	"errors"
	"fmt"

	"github.com/mlxdist/mlxdist/memguard"
)

// A loader checks the guard after each layer. Here "active" memory is a
// counter standing in for MLX's active memory, and the machine is given as
// 512 GB so the output does not depend on where the example runs.
func ExampleGuard_Check() {
	active := int64(0)
	g, err := memguard.New(
		memguard.WithPhysical(512e9),
		memguard.WithUsed("active", func() (int64, error) { return active, nil }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g)
	for layer := range 61 {
		active += 8e9 // one layer's weights
		if err := g.Check(fmt.Sprintf("after layer %d", layer)); err != nil {
			var ex *memguard.ExceededError
			if errors.As(err, &ex) {
				fmt.Printf("stopped at %q\n", ex.Label)
			}
			fmt.Println(err)
			return
		}
	}
	// Output:
	// memguard: limit 460.80 GB (physical 512.00 GB, headroom 51.20 GB from default)
	// stopped at "after layer 57"
	// memguard: after layer 57: active 464.00 GB exceeds limit 460.80 GB (physical 512.00 GB, headroom 51.20 GB); lower the load or set MLX_MEMORY_GUARD_GB
}

// Before a load, Fits asks whether the planned bytes would stay under the
// limit, so a load that cannot succeed is refused before it starts.
func ExampleGuard_Fits() {
	g, err := memguard.New(
		memguard.WithPhysical(512e9),
		memguard.WithUsed("active", func() (int64, error) { return 2e9, nil }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g.Fits(306e9)) // half of a 612 GB checkpoint
	fmt.Println(g.Fits(612e9)) // all of it
	// Output:
	// <nil>
	// memguard: plan: active 2.00 GB + 612.00 GB would exceed limit 460.80 GB (physical 512.00 GB, headroom 51.20 GB); lower the load or set MLX_MEMORY_GUARD_GB
}

// FromEnv reads MLX_MEMORY_GUARD_GB; WithLookupEnv replaces the process
// environment, here to show a headroom of 20 GB.
func ExampleFromEnv() {
	vars := map[string]string{"MLX_MEMORY_GUARD_GB": "20"}
	g, err := memguard.FromEnv(
		memguard.WithPhysical(512e9),
		memguard.WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g)

	vars["MLX_MEMORY_GUARD_GB"] = "lots"
	_, err = memguard.FromEnv(
		memguard.WithPhysical(512e9),
		memguard.WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }),
	)
	fmt.Println(err)
	// Output:
	// memguard: limit 492.00 GB (physical 512.00 GB, headroom 20.00 GB from MLX_MEMORY_GUARD_GB)
	// memguard: invalid headroom: MLX_MEMORY_GUARD_GB="lots" is not a number of GB; set MLX_MEMORY_GUARD_GB to the headroom in GB, e.g. 20
}

// Status gives one measurement against the limit for a log line.
func ExampleGuard_Status() {
	g, err := memguard.New(
		memguard.WithPhysical(512e9),
		memguard.WithUsed("active", func() (int64, error) { return 309.91e9, nil }),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := g.Status()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r)
	// Output:
	// active 309.91 GB of limit 460.80 GB, 150.89 GB free
}

// A program without MLX can guard its own resident size.
func ExampleProcessRSS() {
	g, err := memguard.New(memguard.WithPhysical(64e9), memguard.WithUsed("resident", memguard.ProcessRSS))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(g.Check("startup"))
	// Output:
	// <nil>
}
