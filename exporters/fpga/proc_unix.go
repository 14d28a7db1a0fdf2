//go:build unix

package fpga

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// killGroup starts the command in its own process group and makes its
// cancellation kill the whole group, so that what a wrapper script started
// dies with it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
