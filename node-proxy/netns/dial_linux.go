//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// DialContext connects to address, a literal "ip:port", over network (tcp,
// tcp4 or tcp6). The returned net.Conn is always a *net.TCPConn. Errors are
// *net.OpError; a dial cut short by ctx or Timeout reports Timeout() or wraps
// ctx.Err().
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	raddr, err := parseDialAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	c, err := d.dial(ctx, raddr)
	if err != nil {
		op := &net.OpError{Op: "dial", Net: network, Addr: net.TCPAddrFromAddrPort(raddr), Err: err}
		if d.LocalAddr.IsValid() {
			op.Source = net.TCPAddrFromAddrPort(d.LocalAddr)
		}
		return nil, op
	}
	return c, nil
}

func (d *Dialer) dial(ctx context.Context, raddr netip.AddrPort) (*net.TCPConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	family := unix.AF_INET6
	if raddr.Addr().Is4() {
		family = unix.AF_INET
	}
	if d.LocalAddr.IsValid() && d.LocalAddr.Addr().Unmap().Is4() != raddr.Addr().Is4() {
		return nil, fmt.Errorf("local address %s and destination are of different families", d.LocalAddr)
	}

	fd := -1
	err := Do(d.NS, func() error {
		var err error
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		return os.NewSyscallError("socket", err)
	})
	if err != nil {
		if fd >= 0 { // created, but the thread could not leave the namespace
			_ = unix.Close(fd)
		}
		return nil, err
	}
	pending, err := d.startConnect(fd, raddr)
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	// From here f owns fd. A non-blocking socket gives a pollable *os.File,
	// so waiting for the handshake parks the goroutine, not a thread.
	f := os.NewFile(uintptr(fd), "netns-dial")
	defer f.Close()
	if pending {
		if err := waitConnected(ctx, f); err != nil {
			return nil, err
		}
	}
	c, err := net.FileConn(f) // duplicates the descriptor; f's copy is closed above
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// startConnect marks and binds the socket and starts a non-blocking connect.
// It reports whether the connection is still being established.
func (d *Dialer) startConnect(fd int, raddr netip.AddrPort) (pending bool, err error) {
	if d.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(d.Mark)); err != nil {
			return false, os.NewSyscallError("setsockopt(SO_MARK)", err)
		}
	}
	if d.LocalAddr.IsValid() {
		if d.LocalAddr.Port() == 0 {
			// Choose the port at connect time, from the 4-tuple, so that
			// many connections from one address do not exhaust ports.
			if err := unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
				return false, os.NewSyscallError("setsockopt(IP_BIND_ADDRESS_NO_PORT)", err)
			}
		}
		laddr := netip.AddrPortFrom(d.LocalAddr.Addr().Unmap(), d.LocalAddr.Port())
		if err := unix.Bind(fd, sockaddr(laddr)); err != nil {
			return false, os.NewSyscallError("bind", err)
		}
	}
	switch err := unix.Connect(fd, sockaddr(raddr)); err {
	case nil, unix.EISCONN:
		return false, nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		return true, nil
	default:
		return false, os.NewSyscallError("connect", err)
	}
}

// aLongTimeAgo is a deadline in the past, to wake a waiting dial at once.
var aLongTimeAgo = time.Unix(1, 0)

// waitConnected waits until the non-blocking connect on f completes, fails,
// or ctx ends.
func waitConnected(ctx context.Context, f *os.File) error {
	if dl, ok := ctx.Deadline(); ok {
		if err := f.SetWriteDeadline(dl); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(aLongTimeAgo) })
	defer stop()

	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	err = rc.Write(func(fd uintptr) bool {
		// Called at once, then each time the socket may have become
		// writable; a socket is writable once the handshake has ended.
		soErr, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		switch {
		case err != nil:
			connErr = os.NewSyscallError("getsockopt(SO_ERROR)", err)
			return true
		case soErr != 0:
			connErr = os.NewSyscallError("connect", unix.Errno(soErr))
			return true
		}
		switch _, err := unix.Getpeername(int(fd)); err {
		case nil:
			return true // connected
		case unix.ENOTCONN:
			return false // still in the handshake
		default:
			connErr = os.NewSyscallError("getpeername", err)
			return true
		}
	})
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return ctxErr
		}
		return err
	}
	return connErr
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}
