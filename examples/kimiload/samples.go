package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
)

// sampleEvery is how often --samples records memory during the load.
const sampleEvery = 20 * time.Millisecond

// sample is one line of a --samples file: seconds since the load began,
// MLX's active memory and the process's resident size (0 where the OS does
// not tell it), in bytes.
type sample struct {
	T      float64 `json:"t"`
	Active int64   `json:"active"`
	RSS    int64   `json:"rss"`
}

// sampleMemory records memory every sampleEvery until the returned stop
// is called (or ctx ends); stop writes the samples to path as JSON lines
// and returns the write's error, once, and later calls return the same.
// Sampling costs one trip to the MLX thread and one read of /proc each
// time; the file is written after the load, so the samples do not time the
// disk.
func sampleMemory(ctx context.Context, path string, start time.Time) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	samples := make(chan []sample, 1)
	go func() {
		var out []sample
		take := func() {
			s := sample{T: time.Since(start).Seconds()}
			s.Active, _ = mlx.ActiveMemory()
			s.RSS, _ = memguard.ResidentMemory()
			out = append(out, s)
		}
		tick := time.NewTicker(sampleEvery)
		defer tick.Stop()
		for take(); ctx.Err() == nil; {
			select {
			case <-tick.C:
				take()
			case <-ctx.Done():
			}
		}
		take()
		samples <- out
	}()
	var once sync.Once
	var err error
	return func() error {
		once.Do(func() {
			cancel()
			err = writeSamples(path, <-samples)
		})
		return err
	}
}

func writeSamples(path string, ss []sample) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for i := range ss {
		if err := enc.Encode(&ss[i]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
