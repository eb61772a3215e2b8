//go:build linux

package redirect

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// NFTables is the [Redirector] that programs nftables over netlink, without
// the nft binary. It needs CAP_NET_ADMIN in the pod's namespace (the node
// proxy has it on the node, which owns the pod's namespace). The zero value
// is ready to use and safe for concurrent use on different namespaces.
type NFTables struct{}

var _ Redirector = NFTables{}

// table is our table; only its family and name matter to the kernel.
func table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// Install replaces the inet weft table in ns with cfg's rules, in one
// netlink transaction: either the whole new table is live afterwards, or the
// error says why and the namespace is as it was.
func (NFTables) Install(ns *netns.NS, cfg Config) error {
	cfg, err := cfg.complete()
	if err != nil {
		return fmt.Errorf("install capture rules in netns %s: %w", ns, err)
	}
	err = inNamespace(ns, func(c *nftables.Conn) {
		t := table()
		// "add" does not fail if the table exists, so the "delete" that
		// follows always has something to delete: together they clear any
		// previous version within this same transaction.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		accept := nftables.ChainPolicyAccept
		for _, cp := range plan(cfg) {
			ch := c.AddChain(&nftables.Chain{
				Name:     cp.name,
				Table:    t,
				Type:     nftables.ChainTypeNAT,
				Hooknum:  chainHook(cp.hook),
				Priority: nftables.ChainPriorityNATDest,
				Policy:   &accept,
			})
			for _, r := range cp.rules {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs()})
			}
		}
	})
	if err != nil {
		return fmt.Errorf("install capture rules (table inet %s) in netns %s: %w", TableName, ns, err)
	}
	return nil
}

// Remove deletes the inet weft table from ns, if it is there, and nothing
// else.
func (NFTables) Remove(ns *netns.NS) error {
	err := inNamespace(ns, func(c *nftables.Conn) {
		t := table()
		c.AddTable(t) // makes the delete succeed when the table is absent
		c.DelTable(t)
	})
	if err != nil {
		return fmt.Errorf("remove capture rules (table inet %s) from netns %s: %w", TableName, ns, err)
	}
	return nil
}

// inNamespace queues the messages build writes and sends them to ns's
// nftables as one batch, which the kernel applies as one transaction.
func inNamespace(ns *netns.NS, build func(c *nftables.Conn)) error {
	if ns == nil {
		return fmt.Errorf("no network namespace given")
	}
	return ns.WithFd(func(fd int) error {
		if fd == 0 {
			// The nftables library reads NetNS 0 as "the caller's
			// namespace": hand it a copy of the descriptor above 0.
			dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				return fmt.Errorf("duplicate netns descriptor: %w", err)
			}
			defer unix.Close(dup)
			fd = dup
		}
		c, err := nftables.New(nftables.WithNetNSFd(fd))
		if err != nil {
			return err
		}
		build(c)
		return c.Flush()
	})
}

func chainHook(h hook) *nftables.ChainHook {
	if h == hookPrerouting {
		return nftables.ChainHookPrerouting
	}
	return nftables.ChainHookOutput
}

// exprs returns r as nftables expressions, the same ones nft(8) generates
// for r.String(), so that `nft list` prints it back identically. Every rule
// loads into register 1 and compares there.
func (r rule) exprs() []expr.Any {
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	switch r.kind {
	case skipInLoopback:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")},
			ret,
		}
	case skipOutLoopback:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname("lo")},
			ret,
		}
	case skipMark:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.mark)},
			ret,
		}
	case skipSource:
		return append(sourceMatch(r), ret)
	case skipDport:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.port)},
			ret,
		}
	case redirectTCP:
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.port)},
			&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
		}
	}
	panic(fmt.Sprintf("redirect: no expressions for rule kind %d", r.kind))
}

// sourceMatch matches the network-layer source address against r.prefix:
// the address family first (the table is inet), then the address, masked
// unless the prefix is a single address.
func sourceMatch(r rule) []expr.Any {
	family, offset := byte(unix.NFPROTO_IPV4), uint32(12) // IPv4 header: saddr at 12
	if r.prefix.Addr().Is6() {
		family, offset = unix.NFPROTO_IPV6, 8 // IPv6 header: saddr at 8
	}
	addr := r.prefix.Addr().AsSlice()
	size := uint32(len(addr))
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{family}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size},
	}
	if !r.prefix.IsSingleIP() {
		mask := make([]byte, size)
		for i := 0; i < r.prefix.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: mask, Xor: make([]byte, size)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr})
}

// ifname pads an interface name to IFNAMSIZ, as nft compares whole names.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
