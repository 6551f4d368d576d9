package shard

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/mlxdist/mlxdist/safetensors"
)

// FuzzResolve resolves one rule against one tensor of any shape and dtype
// for any world size. It must not panic; a refusal must be one line; a
// split must give every rank a part of the same size whose slices, over
// all ranks, cover the axis exactly once, and whose bytes safetensors can
// place.
func FuzzResolve(f *testing.F) {
	f.Add("layers.0.qkv.weight", uint8(AllToSharded), int8(0), uint8(safetensors.BF16), uint8(2), uint16(48), uint16(8), uint16(1), []byte{2, 1, 1}, uint8(4), uint8(2))
	f.Add("layers.0.o_proj.scales", uint8(ShardedToAll), int8(0), uint8(safetensors.BF16), uint8(2), uint16(16), uint16(6), uint16(1), []byte(nil), uint8(0), uint8(4))
	f.Add("layers.0.experts.up_proj.weight", uint8(AllToSharded), int8(0), uint8(safetensors.U32), uint8(3), uint16(4), uint16(8), uint16(4), []byte(nil), uint8(0), uint8(2))
	f.Add("layers.0.kv_b_proj.weight", uint8(SplitAxis), int8(-2), uint8(safetensors.F4), uint8(2), uint16(12), uint16(3), uint16(1), []byte{1, 2}, uint8(3), uint8(3))
	f.Add("layers.0.mlp.down_proj.bias", uint8(9), int8(1), uint8(0), uint8(1), uint16(0), uint16(0), uint16(0), []byte{0}, uint8(0), uint8(1))
	f.Fuzz(func(t *testing.T, name string, action uint8, axis int8, dtype uint8, ndim uint8, d0, d1, d2 uint16, segs []byte, units, world uint8) {
		shape := []int64{int64(d0), int64(d1), int64(d2)}[:ndim%4]
		tensor := Tensor{Name: name, Dtype: safetensors.Dtype(dtype), Shape: shape}
		if _, err := tensor.size(); err != nil {
			return // NewPlan refuses it before resolving
		}
		rule := Rule{Pattern: regexp.MustCompile(""), Action: Action(action % 6), Axis: int(axis), Units: int(units)}
		for _, s := range segs[:min(len(segs), 4)] {
			rule.Segments = append(rule.Segments, int64(s))
		}
		n := int(world%9) + 1
		s, err := (&RuleSet{Rules: []Rule{rule}}).Resolve(tensor, n)
		if err != nil {
			var se *ShardError
			if !errors.As(err, &se) && !strings.Contains(err.Error(), "unknown action") {
				t.Fatalf("a refusal that is no *ShardError: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("a refusal of more than one line: %q", err)
			}
			return
		}
		if s.Replicated() {
			return
		}
		dim := tensor.Shape[s.Axis]
		covered := make([]int, dim)
		var size int64 = -1
		for k := range n {
			p, err := tensor.info().Part(s.Axis, s.Slices(n, k)...)
			if err != nil {
				t.Fatalf("rank %d of %d: a split that safetensors cannot place: %v", k, n, err)
			}
			if size >= 0 && p.Size() != size {
				t.Fatalf("rank %d of %d has %d bytes, rank 0 %d", k, n, p.Size(), size)
			}
			size = p.Size()
			for _, sl := range s.Slices(n, k) {
				for i := sl.Start; i < sl.End; i++ {
					covered[i]++
				}
			}
		}
		if size*int64(n) != tensor.Size() {
			t.Fatalf("%d parts of %d bytes for a tensor of %d", n, size, tensor.Size())
		}
		for i, c := range covered {
			if c != 1 {
				t.Fatalf("index %d of axis %d is kept by %d ranks", i, s.Axis, c)
			}
		}
	})
}

// fuzzNames are the tensors FuzzNewPlan builds models from: every kind the
// built-in rules treat differently.
var fuzzNames = []string{
	"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
	"model.layers.%d.self_attn.q_proj.weight", "model.layers.%d.self_attn.k_proj.weight",
	"model.layers.%d.self_attn.o_proj.weight", "model.layers.%d.self_attn.o_proj.bias",
	"model.layers.%d.mlp.gate_proj.weight", "model.layers.%d.mlp.down_proj.weight",
	"model.layers.%d.mlp.down_proj.scales", "model.layers.%d.mlp.down_proj.biases",
	"model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", "model.layers.%d.self_attn.kv_b_proj.weight",
	"model.layers.%d.mlp.switch_mlp.up_proj.weight", "vision_tower.blocks.%d.mlp.fc1.weight",
}

// FuzzNewPlan plans models built from the bytes, 6 to a tensor (name,
// layer, dtype, rank count and two dimensions, a third when the name asks
// for experts), for any rank and strategy. It must not panic; a refusal
// must be one line; a plan must add up: every part's bytes are its
// TensorPlan's ShardBytes, the sections' figures sum to the totals, and a
// rank never keeps more than the checkpoint.
func FuzzNewPlan(f *testing.F) {
	f.Add([]byte{3, 0, byte(safetensors.BF16), 8, 16, 0, 8, 0, byte(safetensors.BF16), 16, 8, 0, 2, 0, byte(safetensors.F32), 16, 0, 0}, uint8(1), uint8(1), uint8(0))
	f.Add([]byte{11, 1, byte(safetensors.U32), 6, 4, 0, 13, 1, byte(safetensors.BF16), 2, 12, 4, 0, 0, byte(safetensors.BF16), 4, 4, 0}, uint8(1), uint8(0), uint8(1))
	f.Add([]byte{9, 2, byte(safetensors.BF16), 4, 6, 0, 10, 2, byte(safetensors.BF16), 4, 6, 0, 8, 2, byte(safetensors.U32), 4, 3, 0}, uint8(2), uint8(2), uint8(0))
	f.Add([]byte{4, 3, byte(safetensors.F8E4M3), 9, 9, 0}, uint8(5), uint8(5), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, world, rank, strategy uint8) {
		var ts []Tensor
		for i := 0; i+6 <= len(b) && len(ts) < 64; i += 6 {
			name := fuzzNames[int(b[i])%len(fuzzNames)]
			if strings.Contains(name, "%d") {
				name = fmt.Sprintf(name, b[i+1]%4)
			}
			shape := []int64{int64(b[i+3]), int64(b[i+4])}
			if strings.Contains(name, "switch_mlp") {
				shape = append([]int64{int64(b[i+5] % 5)}, shape...)
			}
			if name == "model.norm.weight" {
				shape = shape[:1]
			}
			ts = append(ts, Tensor{Name: name, Dtype: safetensors.Dtype(b[i+2] % 24), Shape: shape})
		}
		o := PlanOptions{WorldSize: int(world%8) + 1, Rank: int(rank % 9), Strategy: Strategy(strategy % 3), PageSize: 4096}
		p, err := NewPlan(ts, o)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("a refusal of more than one line: %q", err)
			}
			return
		}
		var read, shard, checkpoint int64
		for _, tn := range ts {
			checkpoint += tn.Size()
		}
		if p.Checkpoint != checkpoint {
			t.Fatalf("checkpoint %d, the tensors hold %d", p.Checkpoint, checkpoint)
		}
		for _, sp := range p.Sections {
			read += sp.Read
			shard += sp.Shard
			for _, tp := range sp.Tensors {
				if tp.Part.Size() != tp.ShardBytes {
					t.Fatalf("%s: part of %d bytes, ShardBytes %d", tp.Name, tp.Part.Size(), tp.ShardBytes)
				}
				var runs int64
				for r := range p.Ranges(&tp) {
					runs += r.Length
				}
				if runs != tp.ShardBytes {
					t.Fatalf("%s: ranges of %d bytes, ShardBytes %d", tp.Name, runs, tp.ShardBytes)
				}
			}
		}
		if read != p.Read || shard != p.Resident {
			t.Fatalf("sections read %d and keep %d, the plan says %d and %d", read, shard, p.Read, p.Resident)
		}
		if p.Resident > p.Checkpoint || p.Peak < p.Resident {
			t.Fatalf("resident %d, peak %d, checkpoint %d", p.Resident, p.Peak, p.Checkpoint)
		}
	})
}
