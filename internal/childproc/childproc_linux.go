package childproc

import (
	"os/exec"
	"syscall"
)

// Tie makes the kernel kill cmd's process when the process starting it
// dies. Call it before cmd.Start.
//
// The kernel sends the signal when the thread that started the child exits;
// the Go runtime keeps its threads for the life of the process (it ends one
// only when a goroutine locked to it returns), so in practice this is the
// parent's death.
func Tie(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
