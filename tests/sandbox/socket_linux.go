//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"net"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// Listen is net.Listen with the listening socket created inside the network
// namespace at netnsPath. Accept and the accepted connections work from any
// goroutine. address should be a literal "ip:port" or ":port".
func Listen(netnsPath, network, address string) (net.Listener, error) {
	ns, err := netns.Open(netnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netns.Listen(ns, network, address)
}

// Dial connects from inside the network namespace at netnsPath to address,
// a literal "ip:port".
func Dial(ctx context.Context, netnsPath, network, address string) (net.Conn, error) {
	ns, err := netns.Open(netnsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	d := netns.Dialer{NS: ns}
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("dial %s %s from %s: %w", network, address, netnsPath, err)
	}
	return c, nil
}
