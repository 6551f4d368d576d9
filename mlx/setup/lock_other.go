//go:build !unix

package main

// lockDir does not lock where there is no flock; pip MLX has no wheels
// there either.
func lockDir(dir string, waiting func()) (unlock func(), err error) {
	return func() {}, nil
}
