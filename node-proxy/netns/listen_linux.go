//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
)

// Listen is net.Listen with the listening socket created inside ns (nil: the
// caller's namespace). The returned listener is served from any goroutine;
// accepted connections belong to ns, like the listener.
//
// network is tcp, tcp4 or tcp6; address is ":port" or "ip:port" with a
// literal IP, so no name is resolved. The socket is plain TCP (never MPTCP),
// so that [OriginalDst] works on what it accepts.
func Listen(ns *NS, network, address string) (net.Listener, error) {
	if err := checkListenAddr(network, address); err != nil {
		return nil, fmt.Errorf("listen %s %s in netns %s: %w", network, address, ns, err)
	}
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	var l net.Listener
	err := Do(ns, func() error {
		var err error
		l, err = lc.Listen(context.Background(), network, address)
		return err
	})
	if err != nil {
		if l != nil { // created, but the thread could not leave the namespace
			l.Close()
		}
		return nil, fmt.Errorf("netns %s: %w", ns, err)
	}
	return l, nil
}
