//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a program started in a namespace of the sandbox.
type Process struct {
	Cmd *exec.Cmd
	PID int

	s    *Sandbox
	done chan struct{} // closed once Wait has returned
	err  error         // Wait's result, set before done is closed

	mu  sync.Mutex // guards out
	out *bytes.Buffer
}

// Start runs argv inside the network namespace at netnsPath (a Node's or
// Pod's NetNSPath, or the underlay's), with env as its environment (nil: the
// caller's). Its stdout and stderr are kept in memory: see [Process.Output].
// The process is stopped by Down; a crash leaves it for [Cleanup].
func (s *Sandbox) Start(netnsPath string, argv []string, env []string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty argv")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	p := &Process{out: new(bytes.Buffer)}
	w := lockedWriter{p}
	cmd.Stdout, cmd.Stderr = w, w
	if err := s.StartCmd(netnsPath, cmd, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Exec runs argv inside the namespace at netnsPath and waits for it. It
// returns its standard output; a failure's error holds its standard error.
// ctx cancelled kills it.
func (s *Sandbox) Exec(ctx context.Context, netnsPath string, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: empty argv")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	p := &Process{}
	if err := s.StartCmd(netnsPath, cmd, p); err != nil {
		return nil, err
	}
	<-p.done
	if p.err != nil {
		return stdout.Bytes(), fmt.Errorf("%s in %s: %w: %s", argv[0], netnsPath, p.err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// StartCmd starts cmd (configured but not started) inside the namespace at
// netnsPath and tracks it as p, which may be a zero Process. A goroutine
// waits for it: callers use p.Wait, never cmd.Wait.
func (s *Sandbox) StartCmd(netnsPath string, cmd *exec.Cmd, p *Process) error {
	s.mu.Lock()
	down := s.down
	s.mu.Unlock()
	if down {
		return fmt.Errorf("start %s: sandbox %s is down", cmd.Path, s.plan.name)
	}
	etc := filepath.Join(EtcDir, filepath.Base(netnsPath))
	var binds []string
	if entries, err := os.ReadDir(etc); err == nil {
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join("/etc", e.Name())); err == nil && !e.IsDir() {
				binds = append(binds, e.Name())
			}
		}
	}

	err := onThread(func() (bool, error) {
		ns, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return false, fmt.Errorf("open netns: %w", err)
		}
		defer unix.Close(ns)
		// From here on the thread is retired afterwards: it is in
		// another network (and maybe mount) namespace.
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			return true, os.NewSyscallError("setns", err)
		}
		if len(binds) > 0 {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return true, os.NewSyscallError("unshare(CLONE_NEWNS)", err)
			}
			// Keep our mounts from propagating back to the host.
			if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
				return true, os.NewSyscallError("mount --make-rslave /", err)
			}
			for _, name := range binds {
				src, dst := filepath.Join(etc, name), filepath.Join("/etc", name)
				if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
					return true, fmt.Errorf("bind-mount %s over %s: %w", src, dst, err)
				}
			}
		}
		return true, cmd.Start()
	})
	if err != nil {
		return fmt.Errorf("start %s in %s: %w", cmd.Path, netnsPath, err)
	}

	p.Cmd, p.PID, p.s, p.done = cmd, cmd.Process.Pid, s, make(chan struct{})
	s.mu.Lock()
	s.procs[p.PID] = p
	var serr error
	if s.down { // Down ran meanwhile
		serr = fmt.Errorf("sandbox %s is down", s.plan.name)
	} else {
		s.st.Processes = append(s.st.Processes, stateProcess{PID: p.PID, Argv: cmd.Args})
		serr = writeState(&s.st)
	}
	s.mu.Unlock()
	go p.wait()
	if serr != nil {
		p.Stop(0)
		return fmt.Errorf("start %s in %s: %w", cmd.Path, netnsPath, serr)
	}
	return nil
}

func (p *Process) wait() {
	p.err = p.Cmd.Wait()
	s := p.s
	s.mu.Lock()
	delete(s.procs, p.PID)
	for i, sp := range s.st.Processes {
		if sp.PID == p.PID {
			s.st.Processes = append(s.st.Processes[:i:i], s.st.Processes[i+1:]...)
			break
		}
	}
	if !s.down {
		_ = writeState(&s.st) // best effort: a stale entry is checked by cmdline anyway
	}
	s.mu.Unlock()
	close(p.done)
}

// Wait waits for the process to exit and returns what exec.Cmd.Wait did.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM, then SIGKILL if the process still runs after grace,
// and waits for it to exit. Stopping an exited process does nothing.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if grace > 0 {
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	_ = p.Cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("process %d (%s) did not exit after SIGKILL", p.PID, p.Cmd.Path)
	}
}

// Output returns what the process has written to stdout and stderr so far,
// for processes started with [Sandbox.Start].
func (p *Process) Output() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out == nil {
		return nil
	}
	return bytes.Clone(p.out.Bytes())
}

type lockedWriter struct{ p *Process }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}
