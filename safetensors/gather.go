package safetensors

// How copyRows gathers strided runs on amd64: runs shorter than
// gatherMaxRun take the kernel (longer ones keep the hardware prefetcher
// trained on their own, and copy() of 1 MiB and more already stores
// non-temporally); each call copies at most gatherCallBytes.
const (
	gatherMaxRun    = 64 << 10
	gatherCallBytes = 1 << 20
)

// gatherAhead is how many rows ahead copyRows prefetches. Measured on a
// 2-core x86-64 machine over a warm 64 MiB tensor, half of each row, 2 to
// 64 rows ahead: for rows of 512 B and of 4 KiB, 4 to 16 were best and
// within noise of each other, 2 and 64 slower.
const gatherAhead = 8

// copyRowsGo is copyRows with copy() per run.
func copyRowsGo(dst, src []byte, rows, run, stride int) {
	for r := range rows {
		copy(dst[r*run:(r+1)*run], src[r*stride:r*stride+run])
	}
}
