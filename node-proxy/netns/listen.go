package netns

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// checkTCP fails unless network is one of tcp, tcp4, tcp6.
func checkTCP(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6":
		return nil
	}
	return fmt.Errorf("network %q: only tcp, tcp4 and tcp6 are supported", network)
}

// checkListenAddr fails unless address is "[host]:port" with host empty or a
// literal IP and port a number, so that listening resolves no names.
func checkListenAddr(network, address string) error {
	if err := checkTCP(network); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("address %q: host must be empty or a literal IP", address)
		}
		if a.Zone() != "" {
			return fmt.Errorf("address %q: zoned addresses are not supported", address)
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("address %q: port must be a number from 0 to 65535", address)
	}
	return nil
}
