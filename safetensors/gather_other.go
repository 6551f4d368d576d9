//go:build !amd64

package safetensors

// copyRows copies rows runs of run bytes, the first at src[0] and each next
// stride bytes further, one after the other into dst. Only amd64 has a
// kernel of its own (see gather_amd64.go); elsewhere this is copy() per
// run.
func copyRows(dst, src []byte, rows, run, stride int) {
	copyRowsGo(dst, src, rows, run, stride)
}
