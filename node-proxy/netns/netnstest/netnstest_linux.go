//go:build linux

package netnstest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// New creates a network namespace named prefix-<8 random hex>, bind-mounted
// under RunDir, with its loopback interface up. The namespace is unmounted
// and its handle closed when tb ends; it disappears with its interfaces once
// nothing else holds it. ns.String() is its path.
func New(tb testing.TB, prefix string) *netns.NS {
	tb.Helper()
	RequireRoot(tb)
	name := prefix + "-" + Suffix(tb, 8)
	path := filepath.Join(RunDir, name)

	ns, err := netns.New()
	if err != nil {
		tb.Fatalf("create netns %s: %v", name, err)
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		ns.Close()
		tb.Fatal(err)
	}
	// O_EXCL: never take over a name that already exists.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		ns.Close()
		tb.Fatalf("create netns %s: %v", name, err)
	}
	f.Close()
	src := fmt.Sprintf("/proc/self/fd/%d", ns.Fd())
	if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
		ns.Close()
		os.Remove(path)
		tb.Fatalf("bind-mount netns %s: %v", name, err)
	}
	ns.Close()
	tb.Cleanup(func() {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount netns %s: %v", path, err)
		}
		if err := os.Remove(path); err != nil {
			tb.Errorf("remove netns %s: %v", path, err)
		}
	})

	// Reopen by name, so the handle and String() name the path.
	named, err := netns.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { named.Close() })
	h := Handle(tb, named)
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		tb.Fatalf("netns %s: bring lo up: %v", name, err)
	}
	// No duplicate address detection on interfaces created later, link-local
	// addresses included: nobody else is on these links, and a tentative
	// address only delays the first IPv6 packets.
	err = netns.Do(named, func() error {
		for _, conf := range []string{"all", "default"} {
			p := "/proc/sys/net/ipv6/conf/" + conf + "/accept_dad"
			if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("netns %s: turn off IPv6 DAD: %v", name, err)
	}
	return named
}

// Handle returns a netlink handle whose sockets live in ns, closed when tb ends.
func Handle(tb testing.TB, ns *netns.NS) *netlink.Handle {
	tb.Helper()
	var h *netlink.Handle
	err := netns.Do(ns, func() error {
		var err error
		h, err = netlink.NewHandle()
		return err
	})
	if err != nil {
		tb.Fatalf("netlink handle in netns %s: %v", ns, err)
	}
	tb.Cleanup(h.Close)
	return h
}

// Veth creates a veth pair between a and b, adds the addresses and brings
// both ends up. The pair is deleted when tb ends.
func Veth(tb testing.TB, a, b End) {
	tb.Helper()
	ha, hb := Handle(tb, a.NS), Handle(tb, b.NS)
	link := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: a.Name},
		PeerName:      b.Name,
		PeerNamespace: netlink.NsFd(b.NS.Fd()),
	}
	if err := ha.LinkAdd(link); err != nil {
		tb.Fatalf("add veth %s (netns %s) <-> %s (netns %s): %v", a.Name, a.NS, b.Name, b.NS, err)
	}
	tb.Cleanup(func() {
		l, err := ha.LinkByName(a.Name)
		if err == nil {
			err = ha.LinkDel(l)
		}
		if err != nil {
			tb.Errorf("delete veth %s in netns %s: %v", a.Name, a.NS, err)
		}
	})
	for _, e := range []struct {
		h   *netlink.Handle
		end End
	}{{ha, a}, {hb, b}} {
		if err := configure(e.h, e.end); err != nil {
			tb.Fatalf("netns %s: %v", e.end.NS, err)
		}
	}
	// The kernel activates a link's queue asynchronously after it comes up,
	// and drops what is sent before; a test's first SYN would then wait a
	// full retransmission timeout. Its operational state turns UP at the
	// same moment, so wait for that.
	deadline := time.Now().Add(5 * time.Second)
	for _, e := range []struct {
		h   *netlink.Handle
		end End
	}{{ha, a}, {hb, b}} {
		for {
			l, err := e.h.LinkByName(e.end.Name)
			if err != nil {
				tb.Fatalf("netns %s: find %s: %v", e.end.NS, e.end.Name, err)
			}
			if l.Attrs().OperState == netlink.OperUp {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("netns %s: %s is %s, not up, after 5s", e.end.NS, e.end.Name, l.Attrs().OperState)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func configure(h *netlink.Handle, e End) error {
	l, err := h.LinkByName(e.Name)
	if err != nil {
		return fmt.Errorf("find %s: %w", e.Name, err)
	}
	for _, p := range e.Addrs {
		a := &netlink.Addr{IPNet: prefixNet(p)}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", p, e.Name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring %s up: %w", e.Name, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
