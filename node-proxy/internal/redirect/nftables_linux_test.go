//go:build linux

package redirect_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftmesh/weft/node-proxy/internal/redirect"
	"github.com/weftmesh/weft/node-proxy/netns"
	"github.com/weftmesh/weft/node-proxy/netns/netnstest"
)

// The test topology: two namespaces made for the test, "node" and "pod",
// joined by a veth pair in a private range nothing else here uses. The
// node side has a second address, standing for the address kubelet probes
// come from.
var (
	nodeIP4  = netip.MustParseAddr("10.153.207.1")
	probeIP4 = netip.MustParseAddr("10.153.207.9")
	podIP4   = netip.MustParseAddr("10.153.207.2")
	nodeIP6  = netip.MustParseAddr("fd15:3207::1")
	probeIP6 = netip.MustParseAddr("fd15:3207::9")
	podIP6   = netip.MustParseAddr("fd15:3207::2")
)

// probes is the probe exemption the tests install.
var probes = []netip.Prefix{netip.PrefixFrom(probeIP4, 32), netip.PrefixFrom(probeIP6, 128)}

type world struct {
	node, pod *netns.NS
}

// newWorld builds the topology and starts, each answering one line per
// connection:
//
//	node netns  :8080            "node-app"
//	pod netns   :8080            "pod-app"
//	pod netns   :15008           "hbone"
//	pod netns   127.0.0.1:15001  "outbound <original destination>"
//	pod netns   [::1]:15001      "outbound <original destination>"
//	pod netns   :15006           "inbound <original destination>"
//
// The listeners are created inside their namespaces with netns.Listen and
// served from the test's goroutines, as the node proxy does.
func newWorld(t testing.TB) *world {
	t.Helper()
	netnstest.RequireRoot(t)
	t.Cleanup(func() { netnstest.CheckThreads(t) }) // runs last
	w := &world{node: netnstest.New(t, "weft-node"), pod: netnstest.New(t, "weft-pod")}
	sfx := netnstest.Suffix(t, 6)
	netnstest.Veth(t,
		netnstest.End{NS: w.node, Name: "wn" + sfx, Addrs: []netip.Prefix{
			netip.PrefixFrom(nodeIP4, 24), netip.PrefixFrom(probeIP4, 24),
			netip.PrefixFrom(nodeIP6, 64), netip.PrefixFrom(probeIP6, 64),
		}},
		netnstest.End{NS: w.pod, Name: "wp" + sfx, Addrs: []netip.Prefix{
			netip.PrefixFrom(podIP4, 24), netip.PrefixFrom(podIP6, 64),
		}},
	)
	serve(t, w.node, ":8080", "node-app", false)
	serve(t, w.pod, ":8080", "pod-app", false)
	serve(t, w.pod, ":15008", "hbone", false)
	serve(t, w.pod, "127.0.0.1:15001", "outbound", true)
	serve(t, w.pod, "[::1]:15001", "outbound", true)
	serve(t, w.pod, ":15006", "inbound", true)
	return w
}

// serve listens on addr inside ns and answers every connection with name,
// followed by the connection's original destination if withDst.
func serve(t testing.TB, ns *netns.NS, addr, name string, withDst bool) {
	t.Helper()
	l, err := netns.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			reply := name
			if withDst {
				dst, err := netns.OriginalDst(c.(*net.TCPConn))
				if err != nil {
					reply += " error: " + err.Error()
				} else {
					reply += " " + dst.String()
				}
			}
			fmt.Fprintln(c, reply)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
}

// ask connects with d to dst and returns the line the server sent.
func ask(t testing.TB, d netns.Dialer, dst netip.AddrPort) string {
	t.Helper()
	d.Timeout = 5 * time.Second
	c, err := d.DialContext(context.Background(), "tcp", dst.String())
	if err != nil {
		t.Fatalf("dial %s from netns %s (mark %#x): %v", dst, d.NS, d.Mark, err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v", dst, err)
	}
	return strings.TrimSuffix(line, "\n")
}

func install(t testing.TB, ns *netns.NS, cfg redirect.Config) {
	t.Helper()
	if err := (redirect.NFTables{}).Install(ns, cfg); err != nil {
		t.Fatal(err)
	}
}

// probe is one connection and the answer it must get.
type probe struct {
	name string
	from netns.Dialer
	to   netip.AddrPort
	want string
}

func check(t *testing.T, probes []probe) {
	t.Helper()
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if got := ask(t, p.from, p.to); got != p.want {
				t.Errorf("got %q, want %q", got, p.want)
			}
		})
	}
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// fromNode dials from the node namespace with source address src.
func fromNode(w *world, src netip.Addr) netns.Dialer {
	return netns.Dialer{NS: w.node, LocalAddr: ap(src, 0)}
}

// (a) outbound TCP from the pod lands on 15001 with its original destination.
func TestOutboundIsCaptured(t *testing.T) {
	w := newWorld(t)
	install(t, w.pod, redirect.Config{ProbeSources: probes})
	pod := netns.Dialer{NS: w.pod}
	check(t, []probe{
		{"IPv4", pod, ap(nodeIP4, 8080), "outbound 10.153.207.1:8080"},
		{"IPv6", pod, ap(nodeIP6, 8080), "outbound [fd15:3207::1]:8080"},
		{"port nobody listens on", pod, ap(nodeIP4, 9999), "outbound 10.153.207.1:9999"},
		{"other mark", netns.Dialer{NS: w.pod, Mark: redirect.DefaultMark + 1}, ap(nodeIP4, 8080), "outbound 10.153.207.1:8080"},
	})
}

// (b) loopback traffic inside the pod is never captured, including to the
// pod's own address (which the kernel routes through lo).
func TestLoopbackIsNotCaptured(t *testing.T) {
	w := newWorld(t)
	install(t, w.pod, redirect.Config{ProbeSources: probes})
	pod := netns.Dialer{NS: w.pod}
	check(t, []probe{
		{"127.0.0.1", pod, ap(netip.MustParseAddr("127.0.0.1"), 8080), "pod-app"},
		{"::1", pod, ap(netip.IPv6Loopback(), 8080), "pod-app"},
		{"own IPv4", pod, ap(podIP4, 8080), "pod-app"},
		{"own IPv6", pod, ap(podIP6, 8080), "pod-app"},
	})
}

// (c) the node proxy's own marked sockets in the pod reach the real
// destination; the mark is configurable and must match exactly.
func TestMarkedSocketsBypass(t *testing.T) {
	w := newWorld(t)
	install(t, w.pod, redirect.Config{ProbeSources: probes})
	marked := netns.Dialer{NS: w.pod, Mark: redirect.DefaultMark}
	check(t, []probe{
		{"IPv4", marked, ap(nodeIP4, 8080), "node-app"},
		{"IPv6", marked, ap(nodeIP6, 8080), "node-app"},
	})

	install(t, w.pod, redirect.Config{Mark: 0x1f00d})
	check(t, []probe{
		{"custom mark", netns.Dialer{NS: w.pod, Mark: 0x1f00d}, ap(nodeIP4, 8080), "node-app"},
		{"default mark no longer bypasses", marked, ap(nodeIP4, 8080), "outbound 10.153.207.1:8080"},
	})
}

// (d) inbound TCP lands on 15006 with its original destination, except
// HBONE on 15008; the outbound port is not reachable from outside.
func TestInboundIsCaptured(t *testing.T) {
	w := newWorld(t)
	install(t, w.pod, redirect.Config{ProbeSources: probes})
	node4, node6 := fromNode(w, nodeIP4), fromNode(w, nodeIP6)
	check(t, []probe{
		{"IPv4", node4, ap(podIP4, 8080), "inbound 10.153.207.2:8080"},
		{"IPv6", node6, ap(podIP6, 8080), "inbound [fd15:3207::2]:8080"},
		{"HBONE IPv4", node4, ap(podIP4, 15008), "hbone"},
		{"HBONE IPv6", node6, ap(podIP6, 15008), "hbone"},
		{"outbound port from outside", node4, ap(podIP4, 15001), "inbound 10.153.207.2:15001"},
		{"port nobody listens on", node4, ap(podIP4, 7777), "inbound 10.153.207.2:7777"},
	})
}

// (e) connections from the probe sources reach the application directly.
func TestProbeSourcesAreExempt(t *testing.T) {
	w := newWorld(t)
	install(t, w.pod, redirect.Config{ProbeSources: probes})
	check(t, []probe{
		{"IPv4 probe", fromNode(w, probeIP4), ap(podIP4, 8080), "pod-app"},
		{"IPv6 probe", fromNode(w, probeIP6), ap(podIP6, 8080), "pod-app"},
		{"IPv4 non-probe", fromNode(w, nodeIP4), ap(podIP4, 8080), "inbound 10.153.207.2:8080"},
	})

	// A prefix: 10.153.207.8/29 holds .9 but not .1.
	install(t, w.pod, redirect.Config{ProbeSources: []netip.Prefix{netip.MustParsePrefix("10.153.207.8/29")}})
	check(t, []probe{
		{"inside prefix", fromNode(w, probeIP4), ap(podIP4, 8080), "pod-app"},
		{"outside prefix", fromNode(w, nodeIP4), ap(podIP4, 8080), "inbound 10.153.207.2:8080"},
		{"IPv6 no longer exempt", fromNode(w, probeIP6), ap(podIP6, 8080), "inbound [fd15:3207::2]:8080"},
	})
}

// (f) Remove deletes our table, traffic flows as if we had never been there,
// and other tables, including ones named weft in other families, survive
// Install and Remove.
func TestRemove(t *testing.T) {
	w := newWorld(t)
	addForeignTables(t, w.pod)
	before := dump(t, w.pod, nil)

	install(t, w.pod, redirect.Config{ProbeSources: probes})
	if got := dump(t, w.pod, isOurs); !strings.Contains(got, "inet weft") {
		t.Fatalf("after Install, no inet weft table:\n%s", got)
	}
	if got := dump(t, w.pod, notOurs); got != before {
		t.Errorf("Install changed other tables:\nbefore:\n%s\nafter:\n%s", before, got)
	}

	if err := (redirect.NFTables{}).Remove(w.pod); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, w.pod, isOurs); got != "" {
		t.Errorf("after Remove, still there:\n%s", got)
	}
	if got := dump(t, w.pod, nil); got != before {
		t.Errorf("after Remove, tables are not as before Install:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	check(t, []probe{
		{"outbound", netns.Dialer{NS: w.pod}, ap(nodeIP4, 8080), "node-app"},
		{"outbound IPv6", netns.Dialer{NS: w.pod}, ap(nodeIP6, 8080), "node-app"},
		{"inbound", fromNode(w, nodeIP4), ap(podIP4, 8080), "pod-app"},
		{"inbound IPv6", fromNode(w, nodeIP6), ap(podIP6, 8080), "pod-app"},
	})

	if err := (redirect.NFTables{}).Remove(w.pod); err != nil {
		t.Errorf("second Remove: %v, want nil", err)
	}
	if got := dump(t, w.pod, nil); got != before {
		t.Errorf("second Remove changed tables:\n%s", got)
	}
}

// (g) Install twice is idempotent, and a second Install with another config
// replaces the first entirely.
func TestInstallTwice(t *testing.T) {
	w := newWorld(t)
	cfg := redirect.Config{ProbeSources: probes}
	install(t, w.pod, cfg)
	first := dump(t, w.pod, isOurs)
	install(t, w.pod, cfg)
	if got := dump(t, w.pod, isOurs); got != first {
		t.Errorf("second identical Install changed the table:\nfirst:\n%s\nsecond:\n%s", first, got)
	}
	check(t, []probe{
		{"probe exempt", fromNode(w, probeIP4), ap(podIP4, 8080), "pod-app"},
		{"outbound", netns.Dialer{NS: w.pod}, ap(nodeIP4, 8080), "outbound 10.153.207.1:8080"},
	})

	// Replacing gives exactly what a first Install of the new config gives.
	install(t, w.pod, redirect.Config{})
	replaced := dump(t, w.pod, isOurs)
	if err := (redirect.NFTables{}).Remove(w.pod); err != nil {
		t.Fatal(err)
	}
	install(t, w.pod, redirect.Config{})
	if fresh := dump(t, w.pod, isOurs); replaced != fresh {
		t.Errorf("Install over another config left:\n%s\nwant, as from a first Install:\n%s", replaced, fresh)
	}
	check(t, []probe{
		{"probe no longer exempt", fromNode(w, probeIP4), ap(podIP4, 8080), "inbound 10.153.207.2:8080"},
		{"outbound after replace", netns.Dialer{NS: w.pod}, ap(nodeIP4, 8080), "outbound 10.153.207.1:8080"},
	})
}

// Install refuses what it cannot do and then changes nothing (fail closed).
func TestInstallFailsCleanly(t *testing.T) {
	netnstest.RequireRoot(t)
	pod := netnstest.New(t, "weft-pod")
	var n redirect.NFTables
	if err := n.Install(pod, redirect.Config{OutboundPort: 15006}); err == nil {
		t.Error("Install with clashing ports succeeded")
	}
	if got := dump(t, pod, nil); got != "" {
		t.Errorf("a refused Install left tables behind:\n%s", got)
	}
	if err := n.Install(nil, redirect.Config{}); err == nil {
		t.Error("Install(nil netns) succeeded")
	}
	closed, err := netns.Open(pod.String())
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if err := n.Install(closed, redirect.Config{}); err == nil {
		t.Error("Install on a closed netns handle succeeded")
	}
	if err := n.Remove(closed); err == nil {
		t.Error("Remove on a closed netns handle succeeded")
	}
}

// The rules in the kernel read back, with nft(8), exactly as Ruleset prints
// them. nft is only used by this check, when it is installed.
func TestKernelShowsRuleset(t *testing.T) {
	netnstest.RequireRoot(t)
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("nft(8) is not installed; skipping the comparison of Ruleset with the kernel's listing")
	}
	pod := netnstest.New(t, "weft-pod")
	cfg := redirect.Config{ProbeSources: []netip.Prefix{
		netip.MustParsePrefix("10.153.207.9/32"),
		netip.MustParsePrefix("10.153.0.0/16"),
		netip.MustParsePrefix("fd15:3207::9/128"),
		netip.MustParsePrefix("fd15::/16"),
	}}
	install(t, pod, cfg)
	want, err := redirect.Ruleset(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	err = netns.Do(pod, func() error {
		// nft opens its netlink socket at start, in this thread's netns;
		// the process is started from this locked thread.
		out, err := exec.Command(nft, "list", "table", "inet", redirect.TableName).CombinedOutput()
		got = string(out)
		return err
	})
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, got)
	}
	if got != want {
		t.Errorf("nft lists:\n%s\nRuleset prints:\n%s", got, want)
	}

	// What Ruleset prints is also valid nft input.
	empty := netnstest.New(t, "weft-pod")
	var out []byte
	err = netns.Do(empty, func() error {
		cmd := exec.Command(nft, "-f", "-")
		cmd.Stdin = strings.NewReader(want)
		out, err = cmd.CombinedOutput()
		return err
	})
	if err != nil {
		t.Errorf("nft -f rejects Ruleset's output: %v\n%s", err, out)
	}
}

// Installs into several namespaces at once do not interfere.
func TestConcurrentInstalls(t *testing.T) {
	netnstest.RequireRoot(t)
	t.Cleanup(func() { netnstest.CheckThreads(t) })
	var pods []*netns.NS
	for range 4 {
		pods = append(pods, netnstest.New(t, "weft-pod"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(pods)*20)
	for _, pod := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n redirect.NFTables
			for range 10 {
				if err := n.Install(pod, redirect.Config{ProbeSources: probes}); err != nil {
					errs <- err
				}
				if err := n.Remove(pod); err != nil {
					errs <- err
				}
			}
			if err := n.Install(pod, redirect.Config{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, pod := range pods {
		if got := dump(t, pod, isOurs); !strings.Contains(got, "inet weft") {
			t.Errorf("netns %s: no table after the last Install:\n%s", pod, got)
		}
	}
}

func BenchmarkInstallRemove(b *testing.B) {
	netnstest.RequireRoot(b)
	pod := netnstest.New(b, "weft-bench")
	var n redirect.NFTables
	cfg := redirect.Config{ProbeSources: probes}
	for b.Loop() {
		if err := n.Install(pod, cfg); err != nil {
			b.Fatal(err)
		}
		if err := n.Remove(pod); err != nil {
			b.Fatal(err)
		}
	}
}

// addForeignTables creates tables that are not ours: one with a chain and a
// rule, and two named weft in other families.
func addForeignTables(t testing.TB, ns *netns.NS) {
	t.Helper()
	c := nftConn(t, ns)
	other := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "other"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: "input", Table: other, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	c.AddRule(&nftables.Rule{Table: other, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}})
	c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: redirect.TableName})
	c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv6, Name: redirect.TableName})
	if err := c.Flush(); err != nil {
		t.Fatalf("add foreign tables: %v", err)
	}
}

func nftConn(t testing.TB, ns *netns.NS) *nftables.Conn {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func isOurs(tb *nftables.Table) bool {
	return tb.Family == nftables.TableFamilyINet && tb.Name == redirect.TableName
}

func notOurs(tb *nftables.Table) bool { return !isOurs(tb) }

// dump describes the tables of ns that keep says to (all if nil), with their
// chains and the expressions of their rules, in a stable order.
func dump(t testing.TB, ns *netns.NS, keep func(*nftables.Table) bool) string {
	t.Helper()
	c := nftConn(t, ns)
	tables, err := c.ListTables()
	if err != nil {
		t.Fatalf("list tables in %s: %v", ns, err)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatalf("list chains in %s: %v", ns, err)
	}
	var b strings.Builder
	for _, tb := range tables {
		if keep != nil && !keep(tb) {
			continue
		}
		fmt.Fprintf(&b, "table %s %s\n", family(tb.Family), tb.Name)
		for _, ch := range chains {
			if ch.Table.Name != tb.Name || ch.Table.Family != tb.Family {
				continue
			}
			fmt.Fprintf(&b, "  chain %s\n", ch.Name)
			rules, err := c.GetRules(tb, ch)
			if err != nil {
				t.Fatalf("list rules of %s in %s: %v", ch.Name, ns, err)
			}
			for _, r := range rules {
				b.WriteString("   ")
				for _, e := range r.Exprs {
					fmt.Fprintf(&b, " %T%+v", e, e)
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

func family(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return fmt.Sprint(f)
}
