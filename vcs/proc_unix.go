//go:build unix

package vcs

import (
	"os/exec"
	"syscall"
	"time"
)

// killGroup makes a cancelled cmd kill its whole process group: the go command's git children
// too, which would otherwise hold its output open (and the download's directory busy).
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}
