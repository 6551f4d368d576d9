//go:build !unix

package cluster

import (
	"os"
	"os/exec"
)

// Without process groups a rank is stopped on its own; there is no gentle
// signal to send first.
func setProcessGroup(*exec.Cmd) {}

func signalGroup(p *os.Process, _ bool) error { return p.Kill() }

func signalNumber(*os.ProcessState) int { return 0 }
