//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
	"net/netip"
)

// Open is not supported off Linux.
func Open(path string) (*NS, error) { return nil, errors.ErrUnsupported }

// FromFD is not supported off Linux.
func FromFD(fd int) (*NS, error) { return nil, errors.ErrUnsupported }

// Current is not supported off Linux.
func Current() (*NS, error) { return nil, errors.ErrUnsupported }

// New is not supported off Linux.
func New() (*NS, error) { return nil, errors.ErrUnsupported }

// Close is a no-op off Linux, where no NS can be opened.
func (ns *NS) Close() error { return nil }

// Do runs fn directly for a nil ns and is not supported otherwise off Linux.
func Do(ns *NS, fn func() error) error {
	if ns == nil {
		return fn()
	}
	return errors.ErrUnsupported
}

// Listen is not supported off Linux.
func Listen(ns *NS, network, address string) (net.Listener, error) {
	return nil, errors.ErrUnsupported
}

// DialContext is not supported off Linux.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, errors.ErrUnsupported
}

// OriginalDst is not supported off Linux.
func OriginalDst(conn *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.ErrUnsupported
}
