package model

import (
	"github.com/mlxdist/mlxdist/mlx"
)

// cacheStep is how many positions a KV cache grows by at once (mlx-lm's
// KVCache.step).
const cacheStep = 256

// kvCache is mlx-lm's KVCache for one layer: keys [B, heads, capacity, d]
// and values [B, heads, capacity, dv], grown in steps of 256 positions
// with zeros and concatenate and written with slice_update; offset
// positions are filled. For Llama-family layers it holds this rank's
// key-value heads; for DeepSeek-V3's attention the latent [B, 1, ·,
// kv_lora] and the rotary key [B, 1, ·, rope] — the same on every rank.
type kvCache struct {
	keys, values *mlx.Array
	offset       int
	// sent is what the stage's last layer sent on in the last step (a
	// pipeline's send), kept so that evaluating the cache runs it.
	sent *mlx.Array
	// old holds the arrays this step replaced, freed once the step's
	// graph no longer needs their handles.
	old []*mlx.Array
}

// update is KVCache.update_and_fetch: it writes k and v at the offset and
// returns the filled part of the cache. The cache's new arrays are made in
// s but owned by the cache: the step keeps them (see Cache.arrays).
func (c *kvCache) update(s *scope, k, v *mlx.Array) (*mlx.Array, *mlx.Array) {
	if s.err != nil {
		return nil, nil
	}
	prev := c.offset
	ks, vs := k.Shape(), v.Shape()
	L := ks[2]
	keys, values := c.keys, c.values
	if keys == nil || prev+L > keys.Shape()[2] {
		steps := (cacheStep + L - 1) / cacheStep
		newK := s.zeros([]int{ks[0], ks[1], steps * cacheStep, ks[3]}, k.Dtype())
		newV := s.zeros([]int{vs[0], vs[1], steps * cacheStep, vs[3]}, v.Dtype())
		if keys != nil {
			if prev%cacheStep != 0 {
				keys = s.slice(keys, []int{0, 0, 0, 0}, []int{keys.Shape()[0], keys.Shape()[1], prev, keys.Shape()[3]})
				values = s.slice(values, []int{0, 0, 0, 0}, []int{values.Shape()[0], values.Shape()[1], prev, values.Shape()[3]})
			}
			keys = s.concat([]*mlx.Array{keys, newK}, 2)
			values = s.concat([]*mlx.Array{values, newV}, 2)
		} else {
			keys, values = newK, newV
		}
	}
	c.offset += L
	keys = s.sliceUpdate(keys, k, []int{0, 0, prev, 0}, []int{ks[0], ks[1], c.offset, ks[3]})
	values = s.sliceUpdate(values, v, []int{0, 0, prev, 0}, []int{vs[0], vs[1], c.offset, vs[3]})
	if s.err != nil {
		return nil, nil
	}
	c.old = append(c.old, c.keys, c.values)
	c.keys, c.values = keys, values
	if c.offset < keys.Shape()[2] {
		ksh, vsh := keys.Shape(), values.Shape()
		return s.slice(keys, []int{0, 0, 0, 0}, []int{ksh[0], ksh[1], c.offset, ksh[3]}),
			s.slice(values, []int{0, 0, 0, 0}, []int{vsh[0], vsh[1], c.offset, vsh[3]})
	}
	return keys, values
}

// Cache is a generation's KV cache: one per layer, as mlx-lm's
// make_prompt_cache builds it. It belongs to one Model; Free releases its
// memory.
type Cache struct {
	layers []*kvCache
	broken bool
}

// Offset is the number of positions the cache holds.
func (c *Cache) Offset() int {
	// A pipeline stage writes its own layers' caches only.
	n := 0
	for _, l := range c.layers {
		n = max(n, l.offset)
	}
	return n
}

// Bytes is the memory the cache's arrays take (its capacity, not only the
// filled positions).
func (c *Cache) Bytes() int64 {
	var n int64
	for _, l := range c.layers {
		if l.keys != nil {
			n += int64(l.keys.Nbytes() + l.values.Nbytes())
		}
	}
	return n
}

// arrays lists the cache's current arrays, which a step must keep.
func (c *Cache) arrays() []*mlx.Array {
	var out []*mlx.Array
	for _, l := range c.layers {
		if l.keys != nil {
			out = append(out, l.keys, l.values)
		}
		if l.sent != nil {
			out = append(out, l.sent)
		}
	}
	return out
}

// dropOld frees the arrays steps have replaced.
func (c *Cache) dropOld() {
	for _, l := range c.layers {
		mlx.FreeAll(l.old...)
		l.old = l.old[:0]
	}
}

// Free releases the cache's arrays.
func (c *Cache) Free() {
	c.dropOld()
	for _, l := range c.layers {
		mlx.FreeAll(l.keys, l.values, l.sent)
		l.keys, l.values, l.sent, l.offset = nil, nil, nil, 0
	}
}
