package safetensors

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readPartMode reads part k of n along axis of the tensor called name in
// the given mode.
func readPartMode(f *File, name string, axis, n, k int, dst []byte, mode ReadMode) (int, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return 0, fmt.Errorf("no tensor %q", name)
	}
	start, end, err := t.partBounds(axis, n, k)
	if err != nil {
		return 0, err
	}
	p, err := t.Part(axis, Slice{start, end})
	if err != nil {
		return 0, err
	}
	read, err := f.ReadPartAt(p, dst, 0, mode)
	return int(min(read, int64(len(dst)))), err
}

func modeReader(f *File, mode ReadMode) func(string, int, int, int, []byte) (int, error) {
	return func(name string, axis, n, k int, dst []byte) (int, error) {
		return readPartMode(f, name, axis, n, k, dst, mode)
	}
}

// cut is the oracle: the bytes of slices of axis of a row-major tensor of
// shape with elem bytes per element, element by element.
func cut(full []byte, shape []int64, elem int64, axis int, slices []Slice) []byte {
	outer, inner := int64(1), int64(1)
	for _, d := range shape[:axis] {
		outer *= d
	}
	for _, d := range shape[axis+1:] {
		inner *= d
	}
	dim := shape[axis]
	var out []byte
	for o := range outer {
		for _, s := range slices {
			for j := s.Start; j < s.End; j++ {
				for i := range inner {
					at := ((o*dim+j)*inner + i) * elem
					out = append(out, full[at:at+elem]...)
				}
			}
		}
	}
	return out
}

func TestAnyPieceOfAPartReadsItsSlicesBytesInEveryMode(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	bytesOf := func(n int64) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// "big" has rows of 2 MiB, so that auto mode preads some runs.
	tensors := []TensorData{
		{"a", BF16, []int64{6, 16, 5}, bytesOf(6 * 16 * 5 * 2)},
		{"big", U8, []int64{3, 1 << 21}, bytesOf(3 << 21)},
		{"norm", F32, []int64{10}, bytesOf(40)},
	}
	path := filepath.Join(t.TempDir(), "p.safetensors")
	require.NoError(t, WriteFile(path, tensors, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	cases := []struct {
		tensor int
		axis   int
		slices []Slice
	}{
		{0, 1, []Slice{{2, 4}, {9, 10}, {13, 15}}}, // a fused segment's pieces
		{0, 2, []Slice{{1, 3}}},                    // part of every row's last axis
		{0, 0, []Slice{{3, 6}}},                    // one range
		{0, 1, []Slice{{12, 16}, {0, 4}}},          // slices out of order
		{1, 1, []Slice{{0, 1 << 20}, {3 << 19, 1 << 21}}},
		{1, 1, []Slice{{5, 300}}},
		{2, 0, []Slice{{0, 10}}},
	}
	for _, c := range cases {
		td := tensors[c.tensor]
		ti, _ := f.Tensor(td.Name)
		want := cut(td.Data, td.Shape, int64(td.Dtype.Bits()/8), c.axis, c.slices)
		p, err := ti.Part(c.axis, c.slices...)
		require.NoError(t, err)
		require.Equal(t, int64(len(want)), p.Size())
		var viaRanges []byte
		last := int64(-1)
		for r := range p.Ranges() {
			assert.NotEqual(t, last, r.Offset, "adjacent ranges are merged")
			last = r.End()
			viaRanges = append(viaRanges, readRange(t, path, r)...)
		}
		assert.Equal(t, want, viaRanges, "%s axis %d %v: ranges", td.Name, c.axis, c.slices)
		for _, mode := range []ReadMode{ReadAuto, ReadPread, ReadMmap} {
			pieces := []int64{1, 7, 4096, p.Size()}
			if p.Size() > 1<<16 {
				pieces = []int64{4099, 1 << 20, p.Size()}
			}
			for _, piece := range pieces {
				label := fmt.Sprintf("%s axis %d %v, mode %d, pieces of %d", td.Name, c.axis, c.slices, mode, piece)
				got := make([]byte, p.Size())
				before := f.BytesRead()
				var read int64
				for off := int64(0); off < p.Size(); off += piece {
					n, err := f.ReadPartAt(p, got[off:min(p.Size(), off+piece)], off, mode)
					require.NoError(t, err, label)
					read += n
				}
				require.Equal(t, want, got, label)
				assert.Equal(t, read, f.BytesRead()-before, "BytesRead counts what was read: %s", label)
				if mode != ReadPread {
					assert.Equal(t, p.Size(), read, "no byte is read twice or left out: %s", label)
				} else {
					assert.GreaterOrEqual(t, read, p.Size(), label)
				}
			}
		}
	}
}

func TestReadPartAtRefusesBytesOutsideItsPartOrFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, WriteFile(path, []TensorData{{"w", U8, []int64{2, 4}, []byte("abcdefgh")}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	ti, _ := f.Tensor("w")
	p, err := ti.Part(1, Slice{1, 3})
	require.NoError(t, err)
	_, err = f.ReadPartAt(p, make([]byte, 2), 3, ReadMmap)
	assert.ErrorContains(t, err, "bytes [3, 5) are not inside a part of 4 bytes")
	_, err = f.ReadPartAt(p, make([]byte, 1), -1, ReadPread)
	assert.Error(t, err)
	far := ti
	far.Offset += 1000 // a tensor of another, larger file
	fp, err := far.Part(1, Slice{1, 3})
	require.NoError(t, err)
	_, err = f.ReadPartAt(fp, make([]byte, 4), 0, ReadAuto)
	assert.ErrorContains(t, err, "outside the data")
	assert.Zero(t, f.BytesRead())

	_, err = ti.Part(1, Slice{3, 5})
	var se *SplitError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, int64(4), se.Dim)
	_, err = ti.Part(2, Slice{0, 1})
	assert.ErrorIs(t, err, ErrSplit)
	q := TensorInfo{Name: "q", Dtype: F4, Shape: []int64{2, 6}, End: 6}
	_, err = q.Part(1, Slice{0, 2}, Slice{3, 4})
	assert.ErrorContains(t, err, "cuts inside a byte")
}

func TestPartPagesCountThePagesItsRunsTouch(t *testing.T) {
	const page = 4096
	for _, tc := range []struct {
		name   string
		shape  []int64
		axis   int
		slices []Slice // nil: the whole tensor
		want   int64
	}{
		{"a whole tensor reads its pages", []int64{10000}, 0, nil, 3 * page},
		{"a leading-axis half is one run of its own pages", []int64{8, 1024}, 0, []Slice{{4, 8}}, page},
		{"half of every 1 KB row touches every page", []int64{64, 1024}, 1, []Slice{{0, 512}}, 16 * page},
		{"runs a page or more apart touch only their own pages", []int64{4, 16384}, 1, []Slice{{8192, 16384}}, 8 * page},
		{"the pieces of two segments share the pages between them", []int64{64, 1024}, 1, []Slice{{0, 256}, {512, 768}}, 16 * page},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := int64(1)
			for _, d := range tc.shape {
				size *= d
			}
			ti := TensorInfo{Name: "w", Dtype: U8, Shape: tc.shape, End: size}
			p := ti.Whole()
			if tc.slices != nil {
				var err error
				p, err = ti.Part(tc.axis, tc.slices...)
				require.NoError(t, err)
			}
			assert.Equal(t, tc.want, p.Pages(page))
		})
	}
}
