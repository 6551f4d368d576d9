package server

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/model"
)

func TestStopText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stops  []string
		pieces []string
		// sent is what add returns piece by piece; rest what is held back
		// at the end.
		sent []string
		hit  int // the piece that completes a stop sequence, or -1
		rest string
	}{
		{"text with no stop sequences passes at once", nil, []string{"ab", "c"}, []string{"ab", "c"}, -1, ""},
		{"a stop sequence inside one piece cuts it", []string{"END"}, []string{"abENDcd"}, []string{"ab"}, 0, ""},
		{"a stop sequence across pieces is held back, then cut", []string{"END"}, []string{"abE", "N", "Dx"}, []string{"ab", "", ""}, 2, ""},
		{"a prefix that does not go on is released", []string{"END"}, []string{"abE", "Nx"}, []string{"ab", "ENx"}, -1, ""},
		{"a held-back prefix comes out at the end", []string{"END"}, []string{"abEN"}, []string{"ab"}, -1, "EN"},
		{"the earliest of several stop sequences wins", []string{"yz", "x"}, []string{"a", "bxyz"}, []string{"a", "b"}, 1, ""},
		{"a stop sequence at the very start gives no text", []string{"<"}, []string{"<a"}, []string{""}, 0, ""},
		{"multi-byte text is held back whole", []string{"é!"}, []string{"caf", "é", "?"}, []string{"caf", "", "é?"}, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stopText{stops: tc.stops}
			hit := -1
			for i, p := range tc.pieces {
				out, h := st.add(p)
				assert.Equal(t, tc.sent[i], out, "piece %d", i)
				if h {
					hit = i
					break
				}
			}
			assert.Equal(t, tc.hit, hit)
			if hit < 0 {
				assert.Equal(t, tc.rest, st.rest())
				assert.Equal(t, strings.Join(tc.pieces, ""), strings.Join(tc.sent, "")+tc.rest)
			}
		})
	}
}

func TestHeaderCarriesAnOrderBitForBit(t *testing.T) {
	seed := uint64(math.MaxUint64 - 5)
	for _, tc := range []struct {
		name string
		o    order
	}{
		{"a greedy request", order{op: opGenerate, seq: 3, prompt: make([]int, 7), maxTokens: 20,
			sampling: model.Sampling{Temp: 0, TopP: 1, Seed: new(uint64)}}},
		{"a sampled request with every filter and a seed past int64", order{op: opGenerate, seq: 1 << 30, prompt: make([]int, 1),
			maxTokens: 1 << 20, sampling: model.Sampling{Temp: 0.7, TopP: 0.9, MinP: 0.05, TopK: 40, Seed: &seed}}},
		{"a heartbeat", order{op: opHeartbeat, prompt: []int{}, sampling: model.Sampling{Seed: new(uint64)}}},
		{"a request with every penalty and logit biases", order{op: opGenerate, seq: 9, prompt: []int{5, 1023, 0}, maxTokens: 8,
			sampling: model.Sampling{Temp: 1, TopP: 1, Seed: &seed},
			penalties: model.Penalties{Repetition: 1.1, RepetitionContext: 64, Presence: -0.3, Frequency: math.SmallestNonzeroFloat64,
				FrequencyContext: 3, LogitBias: map[int]float64{1023: -100, 0: 1.0 / 3, 77: math.MaxFloat64}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseHeader(tc.o.header())
			require.NoError(t, err)
			assert.Equal(t, tc.o.op, got.op)
			assert.Equal(t, tc.o.seq, got.seq)
			assert.Len(t, got.prompt, len(tc.o.prompt))
			assert.Equal(t, tc.o.maxTokens, got.maxTokens)
			assert.Equal(t, tc.o.sampling, got.sampling)
			// The payload follows, as recvOrder reads it.
			got.readPayload(tc.o.payload(), len(tc.o.penalties.LogitBias))
			assert.Equal(t, tc.o.prompt, got.prompt)
			assert.Equal(t, tc.o.penalties, got.penalties)
		})
	}
}

func TestParseHeaderRefusesWhatNoRankSends(t *testing.T) {
	h := (&order{op: 7, prompt: []int{1}}).header()
	_, err := parseHeader(h)
	assert.ErrorContains(t, err, "same build")
	_, err = parseHeader(h[:3])
	assert.ErrorContains(t, err, "header of 3 values")
}
