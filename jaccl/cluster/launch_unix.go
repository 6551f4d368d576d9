//go:build unix

package cluster

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the rank in a process group of its own, so stopping
// it also stops what it started (python's workers, ssh's children).
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends SIGTERM, or SIGKILL when kill is set, to p's group.
// A SIGCONT follows the SIGTERM: a stopped rank (one that never joined, say)
// would otherwise hold the signal until the grace period ends in SIGKILL.
func signalGroup(p *os.Process, kill bool) error {
	if kill {
		return syscall.Kill(-p.Pid, syscall.SIGKILL)
	}
	err := syscall.Kill(-p.Pid, syscall.SIGTERM)
	_ = syscall.Kill(-p.Pid, syscall.SIGCONT)
	return err
}

func signalNumber(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return int(ws.Signal())
	}
	return 0
}
