//go:build linux

package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// threadNSPath names the network namespace of the calling OS thread.
const threadNSPath = "/proc/thread-self/ns/net"

// Open opens the network namespace at path: a bind-mounted namespace such as
// /run/netns/NAME or /var/run/netns/cni-..., or /proc/PID/ns/net. It fails
// if path is not a network namespace.
func Open(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open netns", Path: path, Err: err}
	}
	if err := checkNetNS(fd); err != nil {
		_ = unix.Close(fd)
		return nil, &os.PathError{Op: "open netns", Path: path, Err: err}
	}
	return &NS{name: path, fd: fd}, nil
}

// FromFD wraps a descriptor of a network namespace, such as one received from
// the CNI plugin over a unix socket. On success the NS owns fd and closes it
// on Close; on error fd is left open and still belongs to the caller.
func FromFD(fd int) (*NS, error) {
	if fd < 0 {
		return nil, fmt.Errorf("netns from fd %d: invalid descriptor", fd)
	}
	if err := checkNetNS(fd); err != nil {
		return nil, fmt.Errorf("netns from fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	return &NS{name: fmt.Sprintf("fd %d", fd), fd: fd}, nil
}

// Current opens the network namespace the process runs in (for the node
// proxy: the node's).
func Current() (*NS, error) {
	return Open("/proc/self/ns/net")
}

// New creates a new, empty network namespace (only a loopback interface,
// down) and returns a handle on it. The namespace lives while a handle, a
// bind mount or a process keeps it. The node proxy never creates namespaces;
// harnesses and tests do.
func New() (*NS, error) {
	fd := -1
	err := onLockedThread(
		func() error { return os.NewSyscallError("unshare(CLONE_NEWNET)", unix.Unshare(unix.CLONE_NEWNET)) },
		func() error {
			var err error
			fd, err = unix.Open(threadNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return os.NewSyscallError("open "+threadNSPath, err)
		})
	if err != nil {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		return nil, fmt.Errorf("new netns: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("new netns: %w", os.NewSyscallError("fstat", err))
	}
	return &NS{name: fmt.Sprintf("net:[%d]", st.Ino), fd: fd}, nil
}

// Close releases the handle. The namespace itself goes away when nothing
// else (a process, a bind mount, a socket) keeps it. Close is idempotent.
func (ns *NS) Close() error {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.fd < 0 {
		return nil
	}
	err := unix.Close(ns.fd)
	ns.fd = -1
	return os.NewSyscallError("close", err)
}

// checkNetNS fails unless fd refers to a network namespace.
func checkNetNS(fd int) error {
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return fmt.Errorf("not a namespace: %w", os.NewSyscallError("ioctl(NS_GET_NSTYPE)", err))
	}
	if typ != unix.CLONE_NEWNET {
		return fmt.Errorf("not a network namespace (namespace type %#x)", typ)
	}
	return nil
}

// Do runs fn with its OS thread inside ns and returns fn's error.
//
// fn runs on a fresh goroutine locked to its thread; the calling goroutine
// waits and never changes namespace itself. fn is meant to create sockets
// (socket, bind, listen) and return: it must not block for long, and any
// goroutine it starts runs in the caller's namespace, not in ns. A panic in
// fn is re-raised in the caller after the thread has left ns. A nil ns runs
// fn directly, in the caller's namespace.
//
// If the thread cannot return to its namespace, Do reports it in the error
// and the thread is destroyed rather than reused.
func Do(ns *NS, fn func() error) error {
	if ns == nil {
		return fn()
	}
	return ns.WithFd(func(fd int) error {
		return onLockedThread(func() error {
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("enter netns %s: %w", ns.name, os.NewSyscallError("setns", err))
			}
			return nil
		}, fn)
	})
}

// errGoexit is reported when fn ends its goroutine with runtime.Goexit (for
// example t.FailNow inside Do).
var errGoexit = errors.New("netns: function called runtime.Goexit")

// onLockedThread runs enter and then fn on a new goroutine locked to its OS
// thread, and then puts the thread back into the namespace it started in.
// enter must leave the thread unchanged when it fails. The thread is unlocked
// (returned to the runtime's pool) only once it is back home; otherwise the
// goroutine ends locked, and the runtime destroys the thread with it. The
// process's main thread, which the runtime cannot destroy, is never used.
func onLockedThread(enter, fn func() error) error {
	type outcome struct {
		err      error
		panicked bool
		panicVal any
	}
	done := make(chan outcome, 1)
	go func() {
		out := outcome{err: errGoexit}
		defer func() { done <- out }()

		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The process's main thread: the runtime never destroys it,
			// so it must never risk being left in another namespace. Do
			// the work on a fresh goroutine, which cannot be scheduled on
			// this thread while we hold it.
			func() {
				defer func() {
					if p := recover(); p != nil {
						out = outcome{panicked: true, panicVal: p}
					}
				}()
				out.err = onLockedThread(enter, fn)
			}()
			runtime.UnlockOSThread()
			return
		}
		home, err := unix.Open(threadNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			out.err = fmt.Errorf("open own netns: %w", os.NewSyscallError("open "+threadNSPath, err))
			return
		}
		defer unix.Close(home)
		if err := enter(); err != nil {
			runtime.UnlockOSThread()
			out.err = err
			return
		}
		defer func() {
			if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
				// Stay locked: this thread must never run another goroutine.
				out.err = errors.Join(out.err, fmt.Errorf("return to own netns (OS thread retired): %w", os.NewSyscallError("setns", err)))
				return
			}
			runtime.UnlockOSThread()
		}()
		func() {
			defer func() {
				if p := recover(); p != nil {
					out = outcome{panicked: true, panicVal: p}
				}
			}()
			out.err = fn()
		}()
	}()
	out := <-done
	if out.panicked {
		panic(out.panicVal)
	}
	return out.err
}
