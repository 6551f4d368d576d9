//go:build !linux

package main

// storageRead is unknown outside Linux.
func storageRead() int64 { return -1 }
