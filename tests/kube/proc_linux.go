//go:build linux

package kube

import (
	"os/exec"
	"syscall"
	"time"

	"github.com/weftmesh/weft/tests/internal/proc"
)

const supported = true

// process is one child (etcd or kube-apiserver) in its own process group.
type process = proc.Process

func startProcess(name string, cmd *exec.Cmd) (*process, error) { return proc.Start(name, cmd, nil) }

// killGroupOnCancel makes cmd (a short-lived helper such as the build script)
// run in its own process group, so cancelling its context kills the script
// and everything it started (go build, compile, link).
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}
