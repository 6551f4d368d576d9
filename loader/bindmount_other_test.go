//go:build !linux

package loader

import "testing"

func bindMount(t *testing.T, src string) string {
	t.Skip("bind mounts are a Linux test")
	return ""
}
