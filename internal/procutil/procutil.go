// Package procutil holds what the commands and tests that start child
// processes share.
package procutil

import "os/exec"

// DieWithParent arranges for cmd, not yet started, to be killed when the
// process that starts it dies, on the systems that can (Linux: the parent
// death signal). A test binary that panics on its timeout, or a replay
// killed with SIGKILL, would otherwise leave the processes it started
// running, holding ports and databases and loading the machine.
func DieWithParent(cmd *exec.Cmd) { dieWithParent(cmd) }
