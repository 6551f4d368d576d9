package safetensors

import "testing"

// Where the CPU has AVX, TestCopyRowsCopiesEveryRunAndNothingElse copies
// 32-byte-aligned rows with the AVX kernel; this runs the same cases with
// the SSE2 kernel every amd64 has.
func TestCopyRowsWithTheSSEKernel(t *testing.T) {
	if !haveAVX {
		t.Skip("without AVX every case already takes the SSE2 kernel")
	}
	haveAVX = false
	defer func() { haveAVX = true }()
	checkCopyRows(t)
}
