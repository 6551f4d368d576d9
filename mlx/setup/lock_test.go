//go:build unix

package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestASecondSetupOfOneDirectoryWaitsForTheFirst(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir, func() { t.Error("the first setup found the directory locked") })
	require.NoError(t, err)

	waiting := make(chan struct{})
	acquired := make(chan func(), 1)
	go func() {
		unlock2, err := lockDir(dir, func() { close(waiting) })
		assert.NoError(t, err)
		acquired <- unlock2
	}()
	<-waiting // the second setup says it waits...
	select {
	case <-acquired:
		t.Fatal("the second setup took the lock while the first held it")
	default:
	}
	unlock() // ...and goes on once the first is done
	unlock2 := <-acquired
	require.NotNil(t, unlock2)
	unlock2()
}
