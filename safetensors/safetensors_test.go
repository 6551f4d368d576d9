package safetensors

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEveryDtypeRoundTripsThroughItsName(t *testing.T) {
	require.Len(t, Dtypes(), 22)
	for _, d := range Dtypes() {
		got, err := ParseDtype(d.String())
		require.NoError(t, err)
		assert.Equal(t, d, got)
		assert.Positive(t, d.Bits())
	}
	assert.Equal(t, 2, BF16.Size())
	assert.Equal(t, 0, F4.Size(), "sub-byte kinds have no per-element byte size")
	_, err := ParseDtype("bf16")
	assert.Error(t, err, "names are case-sensitive")
}

func TestSplitsThatCannotBeTakenAreTypedErrors(t *testing.T) {
	w := TensorInfo{Name: "w", Dtype: F32, Shape: []int64{6, 7}}
	q := TensorInfo{Name: "q", Dtype: F4, Shape: []int64{4, 6}}
	cases := []struct {
		name string
		err  func() error
		dim  int64
		msg  string
	}{
		{"a part count that does not divide the axis", func() error { _, err := w.PartRanges(1, 2, 0); return err }, 7,
			`safetensors: tensor "w" axis 1 of size 7 does not split into 2 equal parts`},
		{"an axis past the last", func() error { _, err := w.PartRanges(2, 2, 0); return err }, -1,
			`safetensors: tensor "w" has no axis 2: its shape [6 7] has 2 axes`},
		{"a negative axis", func() error { _, err := w.PartShape(-1, 2); return err }, -1,
			`safetensors: tensor "w" has no axis -1: its shape [6 7] has 2 axes`},
		{"a part index past the count", func() error { _, err := w.PartRanges(0, 2, 2); return err }, 6,
			`safetensors: tensor "w" has no part 2 of 2`},
		{"a slice past the axis end", func() error { _, err := w.AxisRanges(0, 2, 7); return err }, 6,
			`safetensors: tensor "w" axis 0 of size 6 has no slice [2, 7)`},
		{"an F4 part that cuts a byte", func() error { _, err := q.PartRanges(1, 6, 1); return err }, 6,
			`safetensors: tensor "q" slice [1, 2) of axis 1 cuts inside a byte of F4`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			assert.ErrorIs(t, err, ErrSplit)
			var se *SplitError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, c.dim, se.Dim)
			assert.EqualError(t, err, c.msg)
		})
	}
}

func TestPartRangesAreContiguousForALeadingAxisSplit(t *testing.T) {
	w := TensorInfo{Name: "w", Dtype: BF16, Shape: []int64{1, 8, 4}, Offset: 100}
	rs, err := w.PartRanges(1, 4, 3)
	require.NoError(t, err)
	assert.Equal(t, []Range{{100 + 3*2*4*2, 2 * 4 * 2}}, rs)

	rs, err = w.PartRanges(2, 2, 1)
	require.NoError(t, err)
	assert.Len(t, rs, 8, "a last-axis split is one range per row")
	assert.Equal(t, Range{100 + 4, 4}, rs[0])

	rs, err = w.AxisRanges(2, 0, 4)
	require.NoError(t, err)
	assert.Equal(t, []Range{{100, 64}}, rs, "a slice of whole rows merges into one range")

	q := TensorInfo{Name: "q", Dtype: F4, Shape: []int64{2, 8}, Offset: 0}
	rs, err = q.PartRanges(1, 2, 1)
	require.NoError(t, err)
	assert.Equal(t, []Range{{2, 2}, {6, 2}}, rs, "F4 parts on byte boundaries")
}

func TestReadPartRejectsABufferOfTheWrongSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, WriteFile(path, []TensorData{{"w", U8, []int64{2, 4}, []byte("abcdefgh")}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.ReadPart("w", 1, 2, 0, make([]byte, 3))
	assert.EqualError(t, err, `safetensors: tensor "w" slice [0, 2) of axis 1 has 4 bytes, but the buffer has 3`)
	dst := make([]byte, 4)
	n, err := f.ReadPart("w", 1, 2, 1, dst)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, "cdgh", string(dst))
	ti, _ := f.Tensor("w")
	mid, err := ti.Part(1, Slice{1, 3})
	require.NoError(t, err)
	read, err := f.ReadPartAt(mid, dst, 0, ReadAuto)
	require.NoError(t, err)
	assert.Equal(t, int64(4), read)
	assert.Equal(t, "bcfg", string(dst))
	assert.Equal(t, int64(8), f.BytesRead())
	_, err = f.ReadPart("nope", 0, 1, 0, nil)
	assert.ErrorContains(t, err, `no tensor "nope"`)
	require.NoError(t, f.ReleaseTensor("w"))
}

func TestCloseIsIdempotentAndEndsAccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.safetensors")
	require.NoError(t, WriteFile(path, []TensorData{{"w", U8, []int64{2}, []byte("ab")}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, f.Close())
	_, err = f.Data("w")
	assert.Error(t, err)
	_, err = f.ReadPart("w", 0, 1, 0, make([]byte, 2))
	assert.Error(t, err)
}

func TestTheWriterStreamsAndReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.safetensors")
	specs := []TensorSpec{{"a", U8, []int64{4}}, {"z", U8, []int64{0}}, {"b", I16, []int64{3}}}
	w, err := Create(path, specs, map[string]string{"k": "v"})
	require.NoError(t, err)
	for _, piece := range []string{"ab", "cd12", "3456"} {
		_, err := w.Write([]byte(piece))
		require.NoError(t, err)
	}
	_, statErr := os.Stat(path)
	assert.ErrorIs(t, statErr, os.ErrNotExist, "nothing appears at path before Close")
	require.NoError(t, w.Close())

	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	a, _ := f.Data("a")
	b, _ := f.Data("b")
	assert.Equal(t, "abcd", string(a))
	assert.Equal(t, "123456", string(b))
	assert.Equal(t, []string{"a", "b", "z"}, f.Names())
	assert.Equal(t, []string{"a", "z", "b"}, []string{f.Tensors()[0].Name, f.Tensors()[1].Name, f.Tensors()[2].Name})

	// Rewriting the file leaves the mapping of the old one intact.
	require.NoError(t, WriteFile(path, []TensorData{{"a", U8, []int64{1}, []byte("x")}}, nil))
	assert.Equal(t, "abcd", string(a))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestTheWriterRefusesShortAndMisorderedData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.safetensors")
	specs := []TensorSpec{{"a", U8, []int64{2}}, {"b", U8, []int64{2}}}
	w, err := Create(path, specs, nil)
	require.NoError(t, err)
	assert.ErrorContains(t, w.WriteTensor("b", []byte("xy")), "starts at data offset 2 but 0 bytes are written")
	assert.ErrorContains(t, w.WriteTensor("a", []byte("xyz")), "needs 2 bytes, got 3")
	require.NoError(t, w.WriteTensor("a", []byte("xy")))
	assert.ErrorContains(t, w.Close(), "2 of 4 data bytes written")
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist)

	_, err = Create(path, []TensorSpec{{"a", U8, nil}, {"a", U8, nil}}, nil)
	assert.Error(t, err, "duplicate names are refused")
	_, err = Create(path, []TensorSpec{{"q", F4, []int64{3}}}, nil)
	assert.Error(t, err, "a sub-byte tensor that ends mid-byte is refused")
}

func writeShards(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	ts := randomTensors(rng)
	require.NoError(t, WriteDir(dir, [][]TensorData{ts[:4], ts[4:9], ts[9:]}, map[string]string{"format": "pt"}))
}

func editIndex(t *testing.T, dir string, edit func(wm map[string]string)) {
	t.Helper()
	p := filepath.Join(dir, IndexName)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	var idx map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &idx))
	var wm map[string]string
	require.NoError(t, json.Unmarshal(idx["weight_map"], &wm))
	edit(wm)
	idx["weight_map"], _ = json.Marshal(wm)
	b, _ = json.Marshal(idx)
	require.NoError(t, os.WriteFile(p, b, 0o644))
}

func TestACheckpointDirectoryIsOneNameSpace(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir)
	d, err := OpenDir(dir)
	require.NoError(t, err)
	defer d.Close()
	assert.Len(t, d.Files(), 3)
	assert.Equal(t, 13, d.Len())
	info, f, ok := d.Tensor("scales")
	require.True(t, ok)
	assert.Equal(t, filepath.Join(dir, ShardFileName(1, 3)), f.Path())
	assert.Equal(t, f.Path(), info.File)
	total, ok := d.IndexTotalSize()
	assert.True(t, ok)
	assert.Equal(t, total, d.TotalBytes())
	ts := d.Tensors()
	for i := 1; i < len(ts); i++ {
		assert.Less(t, ts[i-1].Name, ts[i].Name)
	}
	_, _, ok = d.Tensor("absent")
	assert.False(t, ok)
}

func TestIndexAndHeadersThatDisagreeAreRejected(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		msg    string
	}{
		{"a tensor in the index but not in its file", func(t *testing.T, dir string) {
			editIndex(t, dir, func(wm map[string]string) { wm["ghost"] = ShardFileName(1, 3) })
		}, `tensor "ghost" is in the index but not in`},
		{"a tensor in a file the index maps elsewhere", func(t *testing.T, dir string) {
			editIndex(t, dir, func(wm map[string]string) { wm["scales"] = ShardFileName(2, 3) })
		}, "but the index maps it to " + ShardFileName(2, 3)},
		{"a tensor in a file but not in the index", func(t *testing.T, dir string) {
			editIndex(t, dir, func(wm map[string]string) { delete(wm, "scales") })
		}, `tensor "scales" is in`},
		{"a file the index names that does not exist", func(t *testing.T, dir string) {
			editIndex(t, dir, func(wm map[string]string) { wm["scales"] = "missing.safetensors" })
		}, "missing.safetensors"},
		{"a file name that leaves the directory", func(t *testing.T, dir string) {
			editIndex(t, dir, func(wm map[string]string) { wm["scales"] = "../x.safetensors" })
		}, "not a file name inside the checkpoint"},
		{"a tensor in two files", func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, IndexName)))
			require.NoError(t, WriteFile(filepath.Join(dir, "extra.safetensors"), []TensorData{{"scales", U8, []int64{1}, []byte{1}}}, nil))
		}, `tensor "scales" is in two files`},
		{"a corrupt shard file", func(t *testing.T, dir string) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, ShardFileName(2, 3)), []byte("junk"), 0o644))
		}, "shorter than the 8-byte header length"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeShards(t, dir)
			c.break_(t, dir)
			_, err := OpenDir(dir)
			require.Error(t, err)
			assert.ErrorContains(t, err, c.msg)
		})
	}
}

func TestOpenDirAcceptsASingleFileAndAnIndexlessDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "only.safetensors")
	require.NoError(t, WriteFile(path, []TensorData{{"w", U8, []int64{1}, []byte{7}}}, nil))
	for _, p := range []string{dir, path} {
		d, err := OpenDir(p)
		require.NoError(t, err)
		assert.Equal(t, []string{"w"}, d.Names())
		_, ok := d.IndexTotalSize()
		assert.False(t, ok)
		require.NoError(t, d.Close())
	}
	_, err := OpenDir(t.TempDir())
	assert.ErrorContains(t, err, "has neither")
}
