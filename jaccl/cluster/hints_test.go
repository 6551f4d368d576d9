package cluster

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExplainRecognisesKnownBackendFailures(t *testing.T) {
	tests := []struct {
		name    string
		msg     string
		kind    error
		backend Backend
		fix     string
	}{
		{"RTR errno 22 means a bridged Thunderbolt interface", "[jaccl] Changing queue pair to RTR failed with errno 22", ErrQueuePairRTR, JACCL, "bridge0 deletem"},
		{"RTR errno 22 also suggests tbnet", "[jaccl] Changing queue pair to RTR failed with errno 22", ErrQueuePairRTR, JACCL, "tbnet plan"},
		{"errno 60 means a timeout", "[jaccl] Changing queue pair to RTS failed with errno 60", ErrRDMATimeout, JACCL, "deletem"},
		{"a coordinator connect error 60 is a timeout", "[jaccl] Couldn't connect (error: 60)", ErrRDMATimeout, JACCL, "MLX_JACCL_COORDINATOR is rank 0's LAN IP"},
		{"errno 16 means busy queue pairs", "[jaccl] Couldn't create queue pair errno 16", ErrQueuePairBusy, JACCL, "other jaccl process"},
		{"a missing device names ibv_devices", "[jaccl] Could not find device rdma_en7", ErrNoDevice, JACCL, "ibv_devices"},
		{"a device that cannot open is also a missing one", "[jaccl] Could not open device rdma_en3", ErrNoDevice, JACCL, "cable"},
		{"no protection domain means RDMA disabled", "[jaccl] Couldn't allocate protection domain", ErrRDMADisabled, JACCL, "rdma_ctl enable"},
		{"more than eight peers", "[jaccl] The maximum number of supported peers is 8 but 9 was provided", ErrTooManyPeers, JACCL, "at most 8"},
		{"a build without jaccl", "Cannot initialize jaccl distributed backend.", ErrJACCLUnavailable, JACCL, "macOS 26.2"},
		{"jaccl started without a launcher", `[jaccl] You need to provide via environment variables a rank (MLX_RANK), ...`, ErrNotLaunched, JACCL, "launch --hostfile"},
		{"ring started without a launcher", `[ring] You need to provide via environment variables both a rank (MLX_RANK) and a hostfile`, ErrNotLaunched, Ring, "launch -n N"},
		{"a refused ring connection means a peer is missing", "RuntimeError: [ring] Couldn't connect (error: 111)", ErrRingConnect, Ring, "start every rank"},
		{"a ring port in use", "[ring] Couldn't bind socket (error: 98)", ErrRingListen, Ring, "lsof"},
		{"a lost ring peer", "[ring] connection to a peer was lost", ErrPeerLost, Ring, "other ranks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := errors.New(tt.msg)
			err := Explain(orig)

			var be *BackendError
			require.ErrorAs(t, err, &be)
			assert.Equal(t, tt.backend, be.Backend)
			assert.ErrorIs(t, err, tt.kind)
			assert.ErrorIs(t, err, orig, "the original error stays in the chain")
			assert.Contains(t, be.Fix, tt.fix)
			assert.Contains(t, err.Error(), tt.msg, "the original message is kept")
			assert.Contains(t, err.Error(), "fix: ")
		})
	}
}

func TestExplainLeavesOtherErrorsAlone(t *testing.T) {
	assert.NoError(t, Explain(nil))
	orig := errors.New("open model.safetensors: no such file")
	assert.Same(t, orig, Explain(orig))

	once := Explain(errors.New("[jaccl] Couldn't allocate protection domain"))
	assert.Same(t, once, Explain(once), "explaining twice does not wrap twice")
}

func TestExplainTextFindsTheFirstFailureInARanksOutput(t *testing.T) {
	out := `loading weights
Traceback (most recent call last):
  File "test.py", line 4, in <module>
RuntimeError: [jaccl] Changing queue pair to RTR failed with errno 22
[jaccl] connection to a peer was lost
`
	err := ExplainText(out)
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrQueuePairRTR)
	var be *BackendError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "RuntimeError: [jaccl] Changing queue pair to RTR failed with errno 22", be.Cause.Error())

	assert.NoError(t, ExplainText("all fine\n[Rank 0/2] all_sum result: 3.0\n"))
}

func TestCheckWorldSizeCatchesASilentSingletonGroup(t *testing.T) {
	tests := []struct {
		name      string
		announced string
		size      int
		wantErr   bool
	}{
		{"two ranks announced but size 1 is an error", "2", 1, true},
		{"two ranks announced and size 2 is fine", "2", 2, false},
		{"no launcher and size 1 is fine", "", 1, false},
		{"one rank announced and size 1 is fine", "1", 1, false},
		{"a garbled announcement is ignored", "two", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkWorldSize(JACCL, tt.announced, tt.size)
			if !tt.wantErr {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, ErrSizeOne)
			assert.ErrorContains(t, err, "launcher set up 2 ranks but init returned a group of size 1")
		})
	}

	t.Setenv("MLX_WORLD_SIZE", "4")
	assert.ErrorIs(t, CheckWorldSize(Ring, 1), ErrSizeOne)
}
