//go:build linux

package kube

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

const supported = true

// process is one child (etcd or kube-apiserver) running in its own process
// group.
type process struct {
	name string
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // result of cmd.Wait; valid after done is closed
}

// startProcess starts cmd in a new process group with PDEATHSIG=SIGKILL, so
// that the child dies with the test binary even if Stop never runs (panic,
// os.Exit, `go test -timeout`).
//
// PDEATHSIG fires when the *thread* that forked the child exits, not the
// process. The Go runtime terminates a thread when a goroutine that locked it
// exits, so the fork happens on a goroutine that locks its thread and keeps it
// locked (and alive) until the child is reaped.
func startProcess(name string, cmd *exec.Cmd) (*process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: if this goroutine exits locked, the thread is
		// destroyed, which is fine because the child has been reaped by then.
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL to the group and waits for the process to be reaped. It signals by
// process-group ID (the child's PID, thanks to Setpgid), never by name.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGTERM %s process group %d: %w", p.name, p.pid, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
	}
	// Kill the group even if the leader already exited, in case it left
	// children behind.
	if err := syscall.Kill(-p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGKILL %s process group %d: %w", p.name, p.pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 30s after SIGKILL", p.name, p.pid)
	}
}

// killGroupOnCancel makes cmd (a short-lived helper such as the build script)
// run in its own process group, so cancelling its context kills the script
// and everything it started (go build, compile, link).
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}
