// Package redirect captures an enrolled pod's TCP traffic for the node proxy
// with nftables rules installed inside the pod's own network namespace.
//
// [NFTables] installs one table, inet weft, with two NAT chains (the exact
// text is returned by [Ruleset] and printed in docs/concepts/interception.md):
//
//   - outbound (hook output): TCP connections the pod opens are redirected
//     to the node proxy's listener on 127.0.0.1/[::1] port 15001, except
//     traffic leaving through loopback and connections from sockets carrying
//     the node proxy's mark (0x539 by default).
//   - inbound (hook prerouting): TCP arriving on the pod's interfaces is
//     redirected to port 15006, except the HBONE port 15008 and connections
//     from the probe sources (the node address kubelet probes come from).
//
// REDIRECT is destination NAT, so the node proxy recovers where a connection
// was going with netns.OriginalDst. NAT chains see only the first packet of a
// connection; conntrack applies the decision to the rest, in both directions.
//
// Nothing is installed in the node's namespace, and removal deletes exactly
// the inet weft table, leaving the pod's other tables alone. Install replaces
// the table atomically (one netlink batch: add, delete, add), so installing
// twice, or again after a node proxy restart, is safe and there is never a
// moment when a half-built table is live.
//
// [Redirector] is the boundary the rest of the node proxy uses; redirecttest
// has a fake for their tests.
package redirect
