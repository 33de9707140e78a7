//go:build !linux

package childproc

import "os/exec"

// Tie does nothing where the kernel has no parent-death signal: children
// outlive a parent killed with -9.
func Tie(*exec.Cmd) {}
