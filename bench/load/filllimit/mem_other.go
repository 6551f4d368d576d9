//go:build !linux

package main

// freshMemory allocates n bytes: memory fresh from the OS, faulted in on
// first touch, where there is no call to fault a range in at once.
func freshMemory(n int64) ([]byte, error) { return make([]byte, n), nil }

func prepare([]byte) {}
