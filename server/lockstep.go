package server

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/mlxdist/mlxdist/jaccl"
	"github.com/mlxdist/mlxdist/model"
)

// The ops rank 0 announces in a header.
const (
	opHeartbeat = 0
	opGenerate  = 1
	opShutdown  = 2
)

// headerLen is the length of the int32 header rank 0 hands every rank
// before each exchange: op, prompt length, max tokens, top-k, request
// number, then the seed and three float64 settings, each as two halves of
// its bits; then the three penalties, each a float64 and its context, and
// the number of logit biases. An all-sum in which only rank 0 contributes
// is a broadcast, and integers add up exactly, so the floats arrive bit
// for bit. The prompt follows, and after it the biases' token ids and
// their float64 values.
const headerLen = 23

// order is one request as every rank needs it: what to generate and how.
type order struct {
	op        int32
	seq       int32
	prompt    []int
	maxTokens int
	sampling  model.Sampling
	penalties model.Penalties
}

func (o *order) header() []int32 {
	h := make([]int32, headerLen)
	h[0], h[1], h[2], h[3], h[4] = o.op, int32(len(o.prompt)), int32(o.maxTokens), int32(o.sampling.TopK), o.seq
	var seed uint64
	if o.sampling.Seed != nil {
		seed = *o.sampling.Seed
	}
	put64 := func(i int, v uint64) { h[i], h[i+1] = int32(uint32(v)), int32(uint32(v>>32)) }
	put64(5, seed)
	put64(7, math.Float64bits(o.sampling.Temp))
	put64(9, math.Float64bits(o.sampling.TopP))
	put64(11, math.Float64bits(o.sampling.MinP))
	pen := o.penalties
	put64(13, math.Float64bits(pen.Repetition))
	h[15] = int32(pen.RepetitionContext)
	put64(16, math.Float64bits(pen.Presence))
	h[18] = int32(pen.PresenceContext)
	put64(19, math.Float64bits(pen.Frequency))
	h[21] = int32(pen.FrequencyContext)
	h[22] = int32(len(pen.LogitBias))
	return h
}

// payload is what follows the header of a generate order: the prompt,
// then the logit biases' ids in increasing order and their values, each
// as two halves of its bits.
func (o *order) payload() []int32 {
	ids := slices.Sorted(maps.Keys(o.penalties.LogitBias))
	out := make([]int32, 0, len(o.prompt)+3*len(ids))
	for _, id := range o.prompt {
		out = append(out, int32(id))
	}
	for _, id := range ids {
		out = append(out, int32(id))
	}
	for _, id := range ids {
		v := math.Float64bits(o.penalties.LogitBias[id])
		out = append(out, int32(uint32(v)), int32(uint32(v>>32)))
	}
	return out
}

// readPayload fills o's prompt and biases from the payload its header
// announced.
func (o *order) readPayload(xs []int32, biases int) {
	for i := range o.prompt {
		o.prompt[i] = int(xs[i])
	}
	if biases == 0 {
		return
	}
	xs = xs[len(o.prompt):]
	o.penalties.LogitBias = make(map[int]float64, biases)
	for i := range biases {
		v := uint64(uint32(xs[biases+2*i])) | uint64(uint32(xs[biases+2*i+1]))<<32
		o.penalties.LogitBias[int(xs[i])] = math.Float64frombits(v)
	}
}

func parseHeader(h []int32) (*order, error) {
	if len(h) != headerLen {
		return nil, fmt.Errorf("server: header of %d values, want %d", len(h), headerLen)
	}
	get64 := func(i int) uint64 { return uint64(uint32(h[i])) | uint64(uint32(h[i+1]))<<32 }
	seed := get64(5)
	o := &order{op: h[0], seq: h[4], prompt: make([]int, h[1]), maxTokens: int(h[2])}
	o.sampling = model.Sampling{
		TopK: int(h[3]),
		Seed: &seed,
		Temp: math.Float64frombits(get64(7)),
		TopP: math.Float64frombits(get64(9)),
		MinP: math.Float64frombits(get64(11)),
	}
	o.penalties = model.Penalties{
		Repetition: math.Float64frombits(get64(13)), RepetitionContext: int(h[15]),
		Presence: math.Float64frombits(get64(16)), PresenceContext: int(h[18]),
		Frequency: math.Float64frombits(get64(19)), FrequencyContext: int(h[21]),
	}
	if o.op < opHeartbeat || o.op > opShutdown || h[1] < 0 || h[2] < 0 || h[22] < 0 {
		return nil, fmt.Errorf("server: header %v from rank 0 is not one this version sends: are all ranks the same build?", h)
	}
	return o, nil
}

// lockstep is the channel from rank 0 to the other ranks: headers and
// prompts, each an all-sum to which only rank 0 adds anything. (The stop
// flag travels inside the generation's own steps: model's
// GenerateOptions.Halt.) On a group of one (or none) it moves nothing.
type lockstep struct {
	g *jaccl.Group
}

func (l *lockstep) alone() bool { return l.g == nil || l.g.Size() < 2 }

func (l *lockstep) leader() bool { return l.alone() || l.g.Rank() == 0 }

// broadcast gives every rank rank 0's xs (the others pass zeros of the
// same length).
func (l *lockstep) broadcast(ctx context.Context, xs []int32) ([]int32, error) {
	if l.alone() {
		return xs, nil
	}
	if !l.leader() {
		clear(xs)
	}
	return jaccl.AllSumSlice(ctx, l.g, xs)
}

// sendOrder hands o to every rank; recvOrder is the other ranks' side.
func (l *lockstep) sendOrder(ctx context.Context, o *order) error {
	if _, err := l.broadcast(ctx, o.header()); err != nil {
		return err
	}
	if o.op != opGenerate || l.alone() {
		return nil
	}
	_, err := l.broadcast(ctx, o.payload())
	return err
}

func (l *lockstep) recvOrder(ctx context.Context) (*order, error) {
	h, err := l.broadcast(ctx, make([]int32, headerLen))
	if err != nil {
		return nil, err
	}
	o, err := parseHeader(h)
	if err != nil || o.op != opGenerate {
		return o, err
	}
	if len(o.prompt) == 0 {
		return nil, fmt.Errorf("server: rank 0 sent an empty prompt")
	}
	biases := int(h[22])
	xs, err := l.broadcast(ctx, make([]int32, len(o.prompt)+3*biases))
	if err != nil {
		return nil, err
	}
	o.readPayload(xs, biases)
	return o, nil
}
