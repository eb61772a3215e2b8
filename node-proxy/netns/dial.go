package netns

import (
	"fmt"
	"net/netip"
	"time"
)

// Dialer opens TCP connections whose sockets carry an SO_MARK and, when NS is
// set, are created inside another network namespace. The node proxy uses it
// for every connection it makes, so that the capture rules in the pod's
// namespace let them through (see package redirect).
//
// Creating the socket is the only step taken inside NS; the connection
// handshake then runs on the runtime's poller like any net.Dialer dial, so a
// slow peer never holds an OS thread inside the namespace.
//
// The zero Dialer dials from the caller's namespace with no mark. A Dialer is
// safe for concurrent use.
type Dialer struct {
	// NS is the network namespace the socket is created in. Nil means the
	// caller's (for the node proxy: the node's).
	NS *NS

	// Mark is set with SO_MARK on the socket before it connects; it needs
	// CAP_NET_ADMIN. Zero sets no mark.
	Mark uint32

	// LocalAddr, if valid, is bound before connecting: its address must be
	// of the same family as the destination's and local to NS. A zero port
	// lets the kernel pick one at connect time (IP_BIND_ADDRESS_NO_PORT). The
	// zero value lets the kernel choose both.
	LocalAddr netip.AddrPort

	// Timeout bounds the whole dial, on top of the context's deadline. Zero
	// means no bound other than the context's and the kernel's SYN retries.
	Timeout time.Duration
}

// parseDialAddr checks network and parses address as a literal "ip:port".
// An IPv4-mapped IPv6 address becomes plain IPv4.
func parseDialAddr(network, address string) (netip.AddrPort, error) {
	if err := checkTCP(network); err != nil {
		return netip.AddrPort{}, err
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: want a literal ip:port (no names are resolved): %w", address, err)
	}
	if ap.Addr().Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("address %q: zoned addresses are not supported", address)
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	switch {
	case network == "tcp4" && !ap.Addr().Is4():
		return netip.AddrPort{}, fmt.Errorf("address %q is not IPv4", address)
	case network == "tcp6" && !ap.Addr().Is6():
		return netip.AddrPort{}, fmt.Errorf("address %q is not IPv6", address)
	}
	return ap, nil
}
