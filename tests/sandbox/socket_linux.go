//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"net"
)

// Listen is net.Listen with the listening socket created inside the network
// namespace at netnsPath. Accept and the accepted connections work from any
// goroutine. address should be a literal "ip:port" or ":port".
func Listen(netnsPath, network, address string) (net.Listener, error) {
	var l net.Listener
	err := inNetNS(netnsPath, func() error {
		var err error
		l, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen %s %s in %s: %w", network, address, netnsPath, err)
	}
	return l, nil
}

// Dial connects from inside the network namespace at netnsPath to address,
// a literal "ip:port". It holds an OS thread in the namespace until the
// connection is established or fails, which suits tests, not proxies.
func Dial(ctx context.Context, netnsPath, network, address string) (net.Conn, error) {
	var c net.Conn
	err := inNetNS(netnsPath, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, address, netnsPath, err)
	}
	return c, nil
}
