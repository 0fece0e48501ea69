//go:build !linux

package proc

import "os/exec"

// Detach does nothing off Linux.
func Detach(*exec.Cmd) {}

// Terminate ends the child.
func Terminate(cmd *exec.Cmd) { _ = cmd.Process.Kill() }

// Kill ends the child.
func Kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
