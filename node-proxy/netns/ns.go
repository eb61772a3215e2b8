package netns

import (
	"errors"
	"sync"
)

// ErrClosed is returned when a closed [NS] is used.
var ErrClosed = errors.New("netns: namespace handle is closed")

// NS is an open handle on a network namespace: a file descriptor that keeps
// the namespace alive and lets [Do], [Listen] and [Dialer] create sockets in
// it. Get one from [Open], [FromFD], [Current] or [New]; the zero value is not
// usable. An NS is safe for concurrent use; Close waits for the calls using
// it to finish.
type NS struct {
	name string // for messages: where it came from, or its inode

	mu sync.RWMutex // guards fd: held for reading while fd is in use, for writing by Close
	fd int          // -1 once closed
}

// String names the namespace for logs and errors: the path it was opened
// from, "fd N", or "net:[inode]".
func (ns *NS) String() string {
	if ns == nil {
		return "<caller's netns>"
	}
	return ns.name
}

// Fd returns the namespace's file descriptor, or -1 once the NS is closed.
// The descriptor stays owned by ns: do not close it, and do not use it after
// Close (for example for nftables or netlink connections opened into the
// namespace).
func (ns *NS) Fd() int {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	return ns.fd
}

// WithFd runs fn with the namespace's descriptor, which stays open until fn
// returns even if Close is called meanwhile. It fails with ErrClosed once the
// NS is closed. fn must not close the descriptor or call Close.
func (ns *NS) WithFd(fn func(fd int) error) error {
	ns.mu.RLock()
	defer ns.mu.RUnlock()
	if ns.fd < 0 {
		return ErrClosed
	}
	return fn(ns.fd)
}
