package safetensors

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// copyRows against copy() per run, over the run lengths, strides and
// destination alignments the kernel takes and those it leaves to copy():
// every byte of each run lands in place, and nothing around dst is
// touched.
func TestCopyRowsCopiesEveryRunAndNothingElse(t *testing.T) {
	checkCopyRows(t)
}

func checkCopyRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, run := range []int{1, 15, 16, 17, 31, 32, 33, 48, 63, 64, 80, 96, 128, 130, 160, 192, 512, 4096, 4100, gatherMaxRun - 16, gatherMaxRun} {
		for _, gap := range []int{0, 16, 3, run} {
			rowCounts := []int{1, 2, 3, 37}
			if run >= 512 { // past one kernel call's share
				rowCounts = append(rowCounts, gatherCallBytes/run+2)
			}
			for _, rows := range rowCounts {
				// Offsets of dst from a 64-byte boundary: every size of
				// ordinary store at the rows' edges (63 to 1 bytes).
				for _, shift := range []int{0, 1, 3, 5, 8, 12, 16, 24, 32, 40, 50, 56, 61} {
					stride := run + gap
					src := make([]byte, (rows-1)*stride+run+1)
					for i := range src {
						src[i] = byte(rng.Uint32())
					}
					want := make([]byte, rows*run)
					copyRowsGo(want, src, rows, run, stride)
					buf := make([]byte, 64+shift+rows*run+64)
					buf = buf[(64-uintptr(unsafe.Pointer(&buf[0]))%64)%64:]
					for i := range buf {
						buf[i] = 0xA5
					}
					dst := buf[shift : shift+rows*run]
					copyRows(dst, src, rows, run, stride)
					label := fmt.Sprintf("run %d, stride %d, rows %d, dst at %d mod 64", run, stride, rows, uintptr(unsafe.Pointer(&dst[0]))%64)
					if string(dst) != string(want) {
						t.Fatalf("%s: the copy differs", label)
					}
					for i, b := range append(buf[:shift:shift], buf[shift+rows*run:]...) {
						require.Equal(t, byte(0xA5), b, "%s: guard byte %d was written", label, i)
					}
				}
			}
		}
	}
}

// Parts whose runs copyRows gathers, read in pieces that start inside a
// run, at a run, and at odd offsets (so that the kernel and copy() both
// take part), give numpy-style slices' bytes.
func TestStridedPartsReadTheirBytesInEveryPiece(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	data := make([]byte, 96*64*4)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	shape := []int64{96, 64}
	path := filepath.Join(t.TempDir(), "s.safetensors")
	require.NoError(t, WriteFile(path, []TensorData{{"q", U32, shape, data}}, nil))
	f, err := Open(path)
	require.NoError(t, err)
	defer f.Close()
	ti, _ := f.Tensor("q")
	for _, s := range []Slice{{16, 48}, {4, 16}, {0, 20}, {60, 64}, {1, 2}} {
		want := cut(data, shape, 4, 1, []Slice{s})
		p, err := ti.Part(1, s)
		require.NoError(t, err)
		require.True(t, p.strided())
		for _, mode := range []ReadMode{ReadAuto, ReadMmap} {
			for _, piece := range []int64{1, 7, 16, 100, 4096, p.Size()} {
				got := make([]byte, p.Size())
				for off := int64(0); off < p.Size(); off += piece {
					n, err := f.ReadPartAt(p, got[off:min(p.Size(), off+piece)], off, mode)
					require.NoError(t, err)
					require.Equal(t, min(piece, p.Size()-off), n)
				}
				require.Equal(t, want, got, "slice %v, mode %d, pieces of %d", s, mode, piece)
			}
		}
	}
}
