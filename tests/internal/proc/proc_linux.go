//go:build linux

// Package proc runs the long-lived children of the test harnesses
// (tests/kube's etcd and kube-apiserver, tests/cluster's components): each
// in its own process group, killed with the test binary, stopped by process
// group ID, never by name.
package proc

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is one child running in its own process group.
type Process struct {
	Name string
	PID  int
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // result of cmd.Wait; valid after done is closed
}

// Start starts cmd (its output and environment set by the caller) in a new
// process group with PDEATHSIG=SIGKILL, so that the child dies with the test
// binary even if Stop never runs (panic, os.Exit, `go test -timeout`).
//
// PDEATHSIG fires when the *thread* that forked the child exits, not the
// process. The Go runtime terminates a thread when a goroutine that locked it
// exits, so the fork happens on a goroutine that locks its thread and keeps it
// locked (and alive) until the child is reaped.
func Start(name string, cmd *exec.Cmd, onExit func()) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &Process{Name: name, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: if this goroutine exits locked, the thread is
		// destroyed, which is fine because the child has been reaped by then.
		if onExit != nil {
			defer onExit()
		}
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		p.PID = cmd.Process.Pid
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the result of waiting for the process; valid once Exited.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Stop sends SIGTERM to the process group, waits up to grace, then sends
// SIGKILL to the group (even if the leader already exited, in case it left
// children behind) and waits for the process to be reaped.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Exited() {
		if err := syscall.Kill(-p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("SIGTERM %s process group %d: %w", p.Name, p.PID, err)
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
		}
	}
	if err := syscall.Kill(-p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("SIGKILL %s process group %d: %w", p.Name, p.PID, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit 30s after SIGKILL", p.Name, p.PID)
	}
}
