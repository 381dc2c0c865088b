//go:build !unix

package vcs

import (
	"os/exec"
	"time"
)

// killGroup bounds the wait for a cancelled cmd's output: without process groups, its children
// may outlive it.
func killGroup(cmd *exec.Cmd) { cmd.WaitDelay = 10 * time.Second }
