package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/mlxdist/mlxdist/internal/units"
	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/loader"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/safetensors"
)

// defaultClusters are the node memories --plan-only places Kimi K2.5 on
// when --nodes-gb names none: two 512 GB Macs, one 512 and two 256, four
// 512.
var defaultClusters = [][]float64{{512, 512}, {512, 256, 256}, {512, 512, 512, 512}}

// usable is what a node of gb GB lets a load hold: its physical memory
// less the guard's default headroom.
func usable(gb float64) (int64, error) {
	g, err := memguard.New(memguard.WithPhysical(int64(gb * 1e9)))
	if err != nil {
		return 0, err
	}
	return int64(g.Limit()), nil
}

// placementOptions are what o asks of a placement on ranks of the given
// usable memory: the context's KV cache and activations at tp ranks per
// stage, from cfg (nil: weights alone).
func placementOptions(o *options, cfg *model.Config, rules *loader.RuleSet, mem []int64, tp int) loader.PlacementOptions {
	po := loader.PlacementOptions{PlanOptions: loader.PlanOptions{Strategy: o.strategy, Rules: rules, PageSize: 16384}, Memory: mem, TP: tp}
	if cfg != nil {
		po.TiedEmbeddings = cfg.TieWordEmbeddings
		if o.context > 0 {
			ip := cfg.PlanInference(o.context, 0, tp, 2)
			po.KVPerLayer = ip.KVCache / int64(max(cfg.NumHiddenLayers, 1))
			po.Activations = ip.Activations
		}
	}
	return po
}

// place places the model on mem by o: --placement auto, or --pp stages of
// len(mem)/pp ranks each.
func place(o *options, tensors []safetensors.TensorInfo, cfg *model.Config, rules *loader.RuleSet, mem []int64) (*loader.Placement, error) {
	if o.placement == "auto" {
		return loader.PlaceAuto(tensors, placementOptions(o, cfg, rules, mem, 0))
	}
	if len(mem)%o.pp != 0 {
		return nil, fmt.Errorf("--pp %d does not divide %d ranks: TP × PP must be the world", o.pp, len(mem))
	}
	tp := len(mem) / o.pp
	return loader.Place(tensors, placementOptions(o, cfg, rules, mem, tp))
}

// describedConfig is the described model's config.json as package model
// reads it.
func describedConfig(m map[string]any) (*model.Config, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return model.ParseConfig("config.json", b)
}

// planPlacements prints, without reading a weight, the placement of the
// model on each cluster: a table per cluster and, with --json, the
// placement as JSON.
func planPlacements(o *options, w io.Writer, tensors []safetensors.TensorInfo, cfg *model.Config, rules *loader.RuleSet) error {
	clusters := defaultClusters
	if len(o.nodesGB) > 0 {
		clusters = [][]float64{o.nodesGB}
	}
	for _, nodes := range clusters {
		mem := make([]int64, len(nodes))
		names := make([]string, len(nodes))
		for i, gb := range nodes {
			var err error
			if mem[i], err = usable(gb); err != nil {
				return err
			}
			names[i] = fmt.Sprintf("%g", gb)
		}
		how := "--placement auto"
		if o.placement != "auto" {
			how = fmt.Sprintf("--pp %d", o.pp)
		}
		fmt.Fprintf(w, "\nnodes of %s GB (usable %s), %s, context %d:\n", strings.Join(names, " + "), gbList(mem), how, o.context)
		p, err := place(o, tensors, cfg, rules, mem)
		if err != nil {
			fmt.Fprintf(w, "refused: %s\n", oneLine(err))
			continue
		}
		if err := p.WriteTable(w); err != nil {
			return err
		}
		if o.jsonOut {
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "%s%s\n", placementMarker, b)
		}
	}
	return nil
}

// placementMarker starts the JSON line of a placement.
const placementMarker = "PLACEMENT "

func gbList(mem []int64) string {
	s := make([]string, len(mem))
	for i, m := range mem {
		s[i] = units.FormatGB(m)
	}
	return strings.Join(s, " + ")
}

// placeRanks places the checkpoint on g's ranks by the memory each rank's
// guard allows, gathered from every rank, before any weight is read.
func placeRanks(ctx context.Context, o *options, g *jaccl.Group, guard *memguard.Guard) (*loader.Placement, error) {
	mem, err := loader.UsableMemory(ctx, g, guard)
	if err != nil {
		return nil, err
	}
	d, err := safetensors.OpenDir(o.model)
	if err != nil {
		return nil, err
	}
	tensors := d.Tensors()
	d.Close()
	cfg, err := model.ReadConfig(o.model)
	if err != nil {
		cfg = nil // a checkpoint without config.json: weights alone, rules from the names
	}
	if o.pp > 0 && g.Size()%o.pp != 0 {
		return nil, fmt.Errorf("--pp %d does not divide %d ranks: TP × PP must be the world", o.pp, g.Size())
	}
	return place(o, tensors, cfg, nil, mem)
}
