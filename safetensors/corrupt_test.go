package safetensors

import (
	"encoding/binary"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlxdist/mlxdist/internal/testenv"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateTestdata = flag.Bool("update-testdata", false, "rewrite the corrupt files in testdata/")

// rawFile assembles a file from a literal header and data, bypassing the
// writer's checks.
func rawFile(header string, data string) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	return append(append(b, header...), data...)
}

func lenOnly(n uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return append(b, "{}"...)
}

// corruptCases holds one small file per rule of the format. pythonAccepts
// marks the files the reference implementation (safetensors 0.8) reads
// anyway, because it does not make that check.
var corruptCases = []struct {
	name          string
	data          []byte
	reason        Reason
	pythonAccepts bool
}{
	{"file-too-small", []byte{1, 0, 0}, ReasonFileTooSmall, false},
	{"header-too-large", lenOnly(MaxHeaderSize + 1), ReasonHeaderTooLarge, false},
	{"header-past-end", lenOnly(50), ReasonHeaderPastEnd, false},
	{"header-utf8", rawFile("{\"\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", "a"), ReasonUTF8, false},
	{"header-json", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}`, "a"), ReasonJSON, false},
	{"header-trailing-garbage", rawFile(`{}x`, ""), ReasonJSON, false},
	{"header-missing-field", rawFile(`{"a":{"dtype":"U8","shape":[1]}}`, "a"), ReasonJSON, false},
	{"header-negative-dim", rawFile(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}`, "a"), ReasonJSON, false},
	{"header-not-object", rawFile(`[]`, ""), ReasonNotObject, false},
	{"duplicate-key", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, "a"), ReasonDuplicate, true},
	{"metadata-not-string", rawFile(`{"__metadata__":{"x":1},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, "a"), ReasonMetadata, false},
	{"unknown-dtype", rawFile(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, strings.Repeat("a", 16)), ReasonDtype, false},
	{"size-overflow", rawFile(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,1]}}`, "a"), ReasonOverflow, false},
	{"partial-byte", rawFile(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, "ab"), ReasonPartialByte, false},
	{"size-mismatch", rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, "abcd"), ReasonSizeMismatch, false},
	{"offset-order", rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}`, "a"), ReasonOffsetOrder, false},
	{"gap", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`, "abc"), ReasonGap, false},
	{"overlap", rawFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, "abc"), ReasonOverlap, false},
	{"past-end", rawFile(`{"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, "ab"), ReasonPastEnd, false},
	{"trailing-bytes", rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, "ab"), ReasonTrailing, false},
}

func corruptPath(name string) string {
	return filepath.Join("testdata", "corrupt-"+name+".safetensors")
}

func TestCorruptTestdataIsCurrent(t *testing.T) {
	for _, c := range corruptCases {
		if *updateTestdata {
			require.NoError(t, os.WriteFile(corruptPath(c.name), c.data, 0o644))
		}
		got, err := os.ReadFile(corruptPath(c.name))
		require.NoError(t, err, "run go test -run TestCorruptTestdataIsCurrent -update-testdata")
		assert.Equal(t, c.data, got, c.name)
	}
}

// TestValidTestdataIsCurrent keeps a valid file of every kind of tensor the
// writer makes in testdata/, where FuzzOpen takes its seeds.
func TestValidTestdataIsCurrent(t *testing.T) {
	p := filepath.Join("testdata", "valid-mixed.safetensors")
	tmp := filepath.Join(t.TempDir(), "v.safetensors")
	require.NoError(t, WriteFile(tmp, randomTensors(rand.New(rand.NewPCG(5, 6))), map[string]string{"format": "pt"}))
	want, err := os.ReadFile(tmp)
	require.NoError(t, err)
	if *updateTestdata {
		require.NoError(t, os.WriteFile(p, want, 0o644))
	}
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	f, err := Open(p)
	require.NoError(t, err)
	assert.Len(t, f.Tensors(), 13)
	require.NoError(t, f.Close())
}

func TestEveryCorruptFileIsRejectedWithItsReason(t *testing.T) {
	for _, c := range corruptCases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(corruptPath(c.name))
			if f != nil {
				f.Close()
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrFormat)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, c.reason, fe.Reason, err.Error())
			assert.Equal(t, corruptPath(c.name), fe.Path)
			assert.Contains(t, err.Error(), corruptPath(c.name))

			// The same bytes through NewReader give the same verdict.
			_, err = NewReader(strings.NewReader(string(c.data)), int64(len(c.data)))
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, c.reason, fe.Reason)
		})
	}
}

func TestErrorMessagesNameTheTensorAndTheNumbers(t *testing.T) {
	f, err := Open(corruptPath("past-end"))
	if f != nil {
		f.Close()
	}
	assert.EqualError(t, err, `safetensors: `+corruptPath("past-end")+`: tensor "w" ends at 4 past data end 2`)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "w", fe.Tensor)
}

func TestTheReferenceImplementationRejectsTheSameCorruptFiles(t *testing.T) {
	args := []string{}
	for _, c := range corruptCases {
		abs, err := filepath.Abs(corruptPath(c.name))
		require.NoError(t, err)
		args = append(args, abs)
	}
	out := testenv.RunPython(t, `
import sys
from safetensors import safe_open
for p in sys.argv[1:]:
    try:
        with safe_open(p, "numpy") as f:
            list(f.keys())
        print("accepted")
    except Exception:
        print("rejected")
`, args...)
	verdicts := strings.Fields(string(out))
	require.Len(t, verdicts, len(corruptCases))
	for i, c := range corruptCases {
		want := "rejected"
		if c.pythonAccepts {
			want = "accepted"
		}
		assert.Equal(t, want, verdicts[i], c.name)
	}
}

func TestValidEdgeCasesAreAccepted(t *testing.T) {
	cases := []struct {
		name   string
		header string
		data   string
		tensor int
	}{
		{"an empty header object is a file with no tensors", `{}`, "", 0},
		{"whitespace around the object is allowed", `  {}   `, "", 0},
		{"null metadata is no metadata", `{"__metadata__":null}`, "", 0},
		{"unknown entry fields are ignored", `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[1]}}`, "a", 1},
		{"zero-size tensors may share an offset", `{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}`, "", 2},
		{"offsets may be listed out of order", `{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, "ab", 2},
		{"a scalar has one element", `{"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, "abcd", 1},
		{"F4 packs two elements a byte", `{"q":{"dtype":"F4","shape":[2,2],"data_offsets":[0,2]}}`, "ab", 1},
		{"F6 packs four elements in three bytes", `{"q":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}`, "abc", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := rawFile(c.header, c.data)
			f, err := NewReader(strings.NewReader(string(b)), int64(len(b)))
			require.NoError(t, err)
			assert.Len(t, f.Tensors(), c.tensor)
		})
	}
}

func TestOpenReportsMissingFilesAsOSErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "absent.safetensors"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.False(t, errors.Is(err, ErrFormat))
}
