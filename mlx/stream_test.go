package mlx_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mlxdist/mlxdist/mlx"
)

func TestReadDataGivesTheBytesThatBytesCopies(t *testing.T) {
	requireMLX(t)
	a := arr(t, randFloats(5, 12), 3, 4)
	view := ok(mlx.Transpose(a))(t) // strided: made contiguous first
	t.Cleanup(view.Free)
	for _, x := range []*mlx.Array{a, view} {
		want := ok(x.Bytes())(t)
		var got []byte
		require.NoError(t, x.ReadData(func(b []byte) error {
			got = append(got, b...)
			return nil
		}))
		assert.Equal(t, want, got)
	}
	stop := errors.New("stop")
	assert.ErrorIs(t, a.ReadData(func([]byte) error { return stop }), stop, "f's error comes back")
}

func TestANewCPUStreamRunsACollectiveOfOne(t *testing.T) {
	requireMLX(t)
	s, err := mlx.NewStream(mlx.CPU)
	require.NoError(t, err)
	dev, err := s.Device()
	require.NoError(t, err)
	assert.Equal(t, mlx.CPU, dev)
	g, err := mlx.DistributedInit(false, "")
	require.NoError(t, err)
	t.Cleanup(g.Free)
	require.Equal(t, 1, g.Size(), "run without a launcher")
	in := randFloats(6, 8)
	sum := ok(mlx.AllSum(arr(t, in, 8), g, s))(t)
	assert.Equal(t, in, floats(t, sum), "a group of one sums to its input")
	s.Free()
	s.Free() // a second Free does nothing
}
