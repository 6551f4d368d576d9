package server_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/mlxdist/mlxdist/memguard"
	"github.com/mlxdist/mlxdist/mlx"
	"github.com/mlxdist/mlxdist/model"
	"github.com/mlxdist/mlxdist/server"
	"github.com/mlxdist/mlxdist/tokenizer"
)

func TestNewRefusesWhatCannotServe(t *testing.T) {
	if err := mlx.Load(); err != nil {
		testenv.Unavailable(t, "MLX: %v", err)
	}
	dir := checkpoint(t)
	m, err := model.Load(context.Background(), dir, model.Options{})
	require.NoError(t, err)
	defer m.Free()
	tok, err := tokenizer.Load(dir)
	require.NoError(t, err)
	// A machine of 2 GB, 1 GB of it headroom and 1 GB in use, has room
	// for nothing more.
	full, err := memguard.New(memguard.WithPhysical(2e9), memguard.WithHeadroom(1e9),
		memguard.WithUsed("test", func() (int64, error) { return 1e9, nil }))
	require.NoError(t, err)
	roomy, err := memguard.New(memguard.WithPhysical(1e12), memguard.WithHeadroom(1e9),
		memguard.WithUsed("test", func() (int64, error) { return 0, nil }))
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		o    server.Options
		want string
	}{
		{"a context whose KV cache would not fit under the guard", server.Options{MaxContext: 4096, Guard: full}, "lower the max context"},
		{"a context past max_position_embeddings", server.Options{MaxContext: m.Config.MaxPositionEmbeddings + 1}, "max_position_embeddings"},
		{"a negative queue", server.Options{MaxQueue: -1}, "max queue -1"},
		{"a negative body limit", server.Options{MaxBodyBytes: -1}, "max body bytes -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := server.New(m, tok, tc.o)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err = server.New(m, tok, server.Options{MaxContext: 4096, Guard: full})
	assert.ErrorIs(t, err, memguard.ErrExceeded)
	s, err := server.New(m, tok, server.Options{MaxContext: 4096, Guard: roomy})
	require.NoError(t, err, "the same context fits on a larger machine")
	assert.Equal(t, 4096, s.MaxContext())
	assert.True(t, s.Leader(), "a model with no group serves itself")
	_, err = server.New(nil, tok, server.Options{})
	assert.ErrorContains(t, err, "a model and its tokenizer")
}
