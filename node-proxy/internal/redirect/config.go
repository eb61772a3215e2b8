package redirect

import (
	"errors"
	"fmt"
	"net/netip"
)

// Defaults, see docs/concepts/interception.md.
const (
	// DefaultOutboundPort is where the pod's outgoing TCP is redirected.
	DefaultOutboundPort = 15001
	// DefaultInboundPort is where plaintext TCP arriving at the pod is
	// redirected.
	DefaultInboundPort = 15006
	// DefaultTunnelPort is the HBONE port, never redirected.
	DefaultTunnelPort = 15008
	// DefaultMark is the SO_MARK of the node proxy's own sockets (1337).
	DefaultMark = 0x539
)

// Config is what the rules of one pod depend on. The zero value is valid:
// the default ports and mark and no probe exemption.
type Config struct {
	// OutboundPort is the port of the node proxy's listener, inside the
	// pod's namespace, that receives the pod's outgoing TCP connections. The
	// kernel redirects them to 127.0.0.1 (or ::1) on this port, so the
	// listener should be bound to loopback. Zero means 15001.
	OutboundPort uint16

	// InboundPort is the port of the node proxy's listener, inside the pod's
	// namespace, that receives TCP connections arriving at the pod on any
	// port but TunnelPort. The kernel redirects them to the receiving
	// interface's address, so the listener must be bound to the wildcard
	// address. Zero means 15006.
	InboundPort uint16

	// TunnelPort is the HBONE port; TCP arriving on it is never redirected.
	// Zero means 15008.
	TunnelPort uint16

	// Mark is the SO_MARK the node proxy sets on its own sockets (see
	// netns.Dialer). Outgoing TCP from sockets whose mark equals it exactly
	// is not redirected. Zero means DefaultMark (0x539).
	Mark uint32

	// ProbeSources are source addresses or prefixes whose TCP into the pod
	// is never redirected: the node address kubelet probes come from. IPv4
	// and IPv6 may be mixed; each entry costs one rule on every new inbound
	// connection, so keep the list short. Nil means no exemption.
	ProbeSources []netip.Prefix
}

// withDefaults fills in the zero fields.
func (c Config) withDefaults() Config {
	if c.OutboundPort == 0 {
		c.OutboundPort = DefaultOutboundPort
	}
	if c.InboundPort == 0 {
		c.InboundPort = DefaultInboundPort
	}
	if c.TunnelPort == 0 {
		c.TunnelPort = DefaultTunnelPort
	}
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	return c
}

// Validate reports every problem with c, after defaults are applied.
func (c Config) Validate() error {
	_, err := c.complete()
	return err
}

// complete applies the defaults, checks the result and returns it with the
// probe sources masked and without duplicates.
func (c Config) complete() (Config, error) {
	c = c.withDefaults()
	var errs []error
	if c.OutboundPort == c.InboundPort || c.OutboundPort == c.TunnelPort || c.InboundPort == c.TunnelPort {
		errs = append(errs, fmt.Errorf("ports must differ: outbound %d, inbound %d, tunnel %d",
			c.OutboundPort, c.InboundPort, c.TunnelPort))
	}
	seen := make(map[netip.Prefix]bool, len(c.ProbeSources))
	probes := make([]netip.Prefix, 0, len(c.ProbeSources))
	for _, p := range c.ProbeSources {
		switch {
		case !p.IsValid():
			errs = append(errs, fmt.Errorf("probe source %q is not a valid address or prefix", p))
			continue
		case p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("probe source %s: write IPv4-mapped addresses in IPv4 form", p))
			continue
		case p.Bits() == 0:
			errs = append(errs, fmt.Errorf("probe source %s would exempt all inbound traffic from capture", p))
			continue
		}
		p = p.Masked()
		if !seen[p] {
			seen[p] = true
			probes = append(probes, p)
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("invalid redirect config: %w", errors.Join(errs...))
	}
	c.ProbeSources = probes
	return c, nil
}
