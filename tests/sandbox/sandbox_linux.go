//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Sandbox is a built topology. Its methods are safe for concurrent use.
type Sandbox struct {
	plan plan

	mu    sync.Mutex // guards the fields below
	st    state
	procs map[int]*Process
	down  bool
}

// Up deletes whatever an earlier sandbox of the same name left (see
// [Cleanup]) and builds the topology. On error, everything built so far is
// deleted.
func (t Topology) Up(ctx context.Context) (*Sandbox, error) {
	p, err := t.plan()
	if err != nil {
		return nil, err
	}
	if err := Cleanup(p.name); err != nil {
		return nil, fmt.Errorf("sandbox %s: clean up an earlier run: %w", p.name, err)
	}
	s := &Sandbox{plan: p, st: state{Name: p.name}, procs: map[int]*Process{}}
	if err := s.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sandbox %s: %w", p.name, err), s.Down())
	}
	return s, nil
}

func (s *Sandbox) build(ctx context.Context) error {
	p := s.plan
	// Record every name before creating it, so that a crash at any point
	// leaves a state file that covers it.
	s.st.Namespaces = p.namespaces()
	if err := writeState(&s.st); err != nil {
		return err
	}
	if err := os.MkdirAll(dirPath(p.name), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dirPath(p.name), err)
	}
	for _, name := range s.st.Namespaces {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := createNetNS(name); err != nil {
			return err
		}
	}

	under, err := openHandle(p.underlay)
	if err != nil {
		return err
	}
	defer under.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := under.LinkAdd(br); err != nil {
		return fmt.Errorf("netns %s: add bridge br0: %w", p.underlay, err)
	}
	if err := linkUp(under, p.underlay, "lo", "br0"); err != nil {
		return err
	}

	for i, n := range p.nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.buildNode(i, n, under); err != nil {
			return err
		}
	}
	return nil
}

// buildNode wires node i to the underlay and to its pods.
func (s *Sandbox) buildNode(i int, n Node, under *netlink.Handle) error {
	p := s.plan
	if err := inNetNS(n.NetNSPath, func() error { return sysctl("net/ipv4/ip_forward", "1") }); err != nil {
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	h, err := openHandle(n.Name)
	if err != nil {
		return err
	}
	defer h.Close()

	// Underlay: eth0 here, n<i> on br0.
	port := fmt.Sprintf("n%d", i)
	if err := addVeth(h, n.Name, "eth0", p.underlay, port); err != nil {
		return err
	}
	brPort, err := under.LinkByName(port)
	if err == nil {
		var brLink netlink.Link
		if brLink, err = under.LinkByName("br0"); err == nil {
			err = under.LinkSetMaster(brPort, brLink)
		}
	}
	if err != nil {
		return fmt.Errorf("netns %s: attach %s to br0: %w", p.underlay, port, err)
	}
	if err := addAddr(h, n.Name, "eth0", netip.PrefixFrom(n.IP, p.nodeBits)); err != nil {
		return err
	}
	if err := linkUp(under, p.underlay, port); err != nil {
		return err
	}
	if err := linkUp(h, n.Name, "lo", "eth0"); err != nil {
		return err
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	for _, other := range p.nodes {
		if other.Name == n.Name {
			continue
		}
		r := &netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: ipNet(other.PodCIDR), Gw: other.IP.AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("netns %s: route %s via %s: %w", n.Name, other.PodCIDR, other.IP, err)
		}
	}

	// Pods: p<j> here (holding the gateway address), eth0 in the pod.
	for j, pod := range p.pods[i] {
		if err := s.buildPod(h, n, j, pod); err != nil {
			return err
		}
	}
	return waitUp(h, n.Name, "eth0")
}

func (s *Sandbox) buildPod(node *netlink.Handle, n Node, j int, pod Pod) error {
	ph, err := openHandle(pod.Name)
	if err != nil {
		return err
	}
	defer ph.Close()
	dev := fmt.Sprintf("p%d", j)
	if err := addVeth(node, n.Name, dev, pod.Name, "eth0"); err != nil {
		return err
	}
	if err := addAddr(node, n.Name, dev, netip.PrefixFrom(n.Gateway, 32)); err != nil {
		return err
	}
	if err := linkUp(node, n.Name, dev); err != nil {
		return err
	}
	l, err := node.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("netns %s: %w", n.Name, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(netip.PrefixFrom(pod.IP, 32)), Scope: netlink.SCOPE_LINK}
	if err := node.RouteAdd(r); err != nil {
		return fmt.Errorf("netns %s: route %s dev %s: %w", n.Name, pod.IP, dev, err)
	}

	if err := addAddr(ph, pod.Name, "eth0", netip.PrefixFrom(pod.IP, 32)); err != nil {
		return err
	}
	if err := linkUp(ph, pod.Name, "lo", "eth0"); err != nil {
		return err
	}
	pl, err := ph.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("netns %s: %w", pod.Name, err)
	}
	gw := &netlink.Route{LinkIndex: pl.Attrs().Index, Dst: ipNet(netip.PrefixFrom(n.Gateway, 32)), Scope: netlink.SCOPE_LINK}
	def := &netlink.Route{LinkIndex: pl.Attrs().Index, Gw: n.Gateway.AsSlice()}
	for _, r := range []*netlink.Route{gw, def} {
		if err := ph.RouteAdd(r); err != nil {
			return fmt.Errorf("netns %s: add route %s: %w", pod.Name, r, err)
		}
	}
	if err := waitUp(node, n.Name, dev); err != nil {
		return err
	}
	return waitUp(ph, pod.Name, "eth0")
}

// Nodes returns the simulated nodes, in order.
func (s *Sandbox) Nodes() []Node { return append([]Node(nil), s.plan.nodes...) }

// Pods returns every pod, node by node.
func (s *Sandbox) Pods() []Pod {
	var out []Pod
	for _, pods := range s.plan.pods {
		out = append(out, pods...)
	}
	return out
}

// Underlay returns the path of the underlay namespace, where br0 joins the
// nodes.
func (s *Sandbox) Underlay() string { return nsPath(s.plan.underlay) }

// Name returns the topology's name.
func (s *Sandbox) Name() string { return s.plan.name }

// Dir returns the sandbox's scratch directory, StateDir/NAME: it exists
// from Up on, and Down and [Cleanup] delete it with everything in it. Later
// layers keep their configuration, state and sockets there.
func (s *Sandbox) Dir() string { return dirPath(s.plan.name) }

// WriteHosts writes entries (host name -> address) as an /etc/hosts file for
// every pod: EtcDir/<pod netns>/hosts, holding localhost and the pod's own
// name too. Processes started afterwards in the pod see it as /etc/hosts.
func (s *Sandbox) WriteHosts(entries map[string]string) error {
	names := make([]string, 0, len(entries))
	for name, addr := range entries {
		if _, err := netip.ParseAddr(addr); err != nil {
			return fmt.Errorf("hosts entry %s: %w", name, err)
		}
		if name == "" || strings.ContainsAny(name, " \t\n#") {
			return fmt.Errorf("hosts entry %q: not a host name", name)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for _, pod := range s.Pods() {
		var b strings.Builder
		b.WriteString("# Written by the weft sandbox.\n127.0.0.1\tlocalhost\n")
		fmt.Fprintf(&b, "%s\t%s\n", pod.IP, pod.Name)
		for _, name := range names {
			fmt.Fprintf(&b, "%s\t%s\n", entries[name], name)
		}
		dir := filepath.Join(EtcDir, pod.Name)
		path := filepath.Join(dir, "hosts")
		if err := s.record(func(st *state) {
			if !contains(st.HostsFiles, path) {
				st.HostsFiles = append(st.HostsFiles, path)
			}
		}); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write hosts for %s: %w", pod.Name, err)
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("write hosts for %s: %w", pod.Name, err)
		}
	}
	return nil
}

// record applies fn to the state and saves it.
func (s *Sandbox) record(fn func(*state)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.st)
	return writeState(&s.st)
}

// Down stops every process started in the sandbox (SIGTERM, then SIGKILL
// after 2s), deletes every namespace (with it, every link) and /etc/netns
// file, the scratch directory and the state file. It is idempotent.
func (s *Sandbox) Down() error {
	s.mu.Lock()
	s.down = true
	procs := make([]*Process, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	st := s.st
	s.mu.Unlock()

	var errs []error
	for _, p := range procs {
		errs = append(errs, p.Stop(2*time.Second))
	}
	errs = append(errs, removeAll(&st))
	return errors.Join(errs...)
}

// Cleanup deletes what a sandbox called name left behind, typically after a
// crash: it kills the processes recorded in its state file that still run
// the recorded command, and any process inside its namespaces; deletes the
// namespaces NAME-u, NAME-n<i> and NAME-n<i>-p<j> and their /etc/netns
// files; and removes the scratch directory (see [Sandbox.Dir]) and the
// state file. Nothing else is touched. Cleanup of a name that left nothing
// does nothing.
func Cleanup(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("sandbox name %q: want 1 to 12 lowercase letters and digits, starting with a letter", name)
	}
	st, err := readState(name)
	if err != nil {
		return err
	}
	if st == nil {
		st = &state{Name: name}
	}
	var errs []error
	for _, p := range st.Processes {
		if cmdlineIs(p.PID, p.Argv) {
			errs = append(errs, killWait(p.PID))
		}
	}
	return errors.Join(append(errs, removeAll(st))...)
}

// removeAll kills what runs in st's namespaces, deletes them (and any other
// namespace st.Name owns), the hosts files and the state file.
func removeAll(st *state) error {
	var errs []error
	found, err := ownedNamespaces(st.Name)
	errs = append(errs, err)
	all := append(append([]string(nil), st.Namespaces...), found...)
	inodes := map[uint64]bool{}
	for _, ns := range all {
		if ino, err := nsInode(nsPath(ns)); err == nil {
			inodes[ino] = true
		}
	}
	// Only processes whose netns is one of the sandbox's: those are ours.
	if len(inodes) > 0 {
		for _, pid := range pidsInNetNS(inodes) {
			errs = append(errs, killWait(pid))
		}
	}
	for _, ns := range all {
		if ownedName(st.Name, ns) {
			errs = append(errs, deleteNetNS(ns))
		}
	}
	for _, f := range st.HostsFiles {
		if filepath.Base(f) != "hosts" || !ownedName(st.Name, filepath.Base(filepath.Dir(f))) || filepath.Dir(filepath.Dir(f)) != EtcDir {
			continue // not a file we write
		}
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		_ = os.Remove(filepath.Dir(f)) // only if empty
	}
	if nameRE.MatchString(st.Name) { // never a path outside StateDir
		if err := os.RemoveAll(dirPath(st.Name)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(statePath(st.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cmdlineIs reports whether process pid runs argv.
func cmdlineIs(pid int, argv []string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(argv) == 0 {
		return false
	}
	return string(b) == strings.Join(argv, "\x00")+"\x00"
}

// killWait sends SIGKILL to pid and waits up to 5s for it to disappear (or
// become a zombie).
func killWait(pid int) error {
	if err := unix.Kill(pid, syscall.SIGKILL); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("kill %d: still running after 5s", pid)
}

func openHandle(ns string) (*netlink.Handle, error) {
	nh, err := vnetns.GetFromPath(nsPath(ns))
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", ns, err)
	}
	defer nh.Close()
	h, err := netlink.NewHandleAt(nh)
	if err != nil {
		return nil, fmt.Errorf("netlink in netns %s: %w", ns, err)
	}
	return h, nil
}

// addVeth creates a veth pair: name in the handle's namespace ns, peer in
// namespace peerNS.
func addVeth(h *netlink.Handle, ns, name, peerNS, peer string) error {
	pf, err := unix.Open(nsPath(peerNS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", peerNS, err)
	}
	defer unix.Close(pf)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer, PeerNamespace: netlink.NsFd(pf)}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s (netns %s) <-> %s (netns %s): %w", name, ns, peer, peerNS, err)
	}
	return nil
}

func addAddr(h *netlink.Handle, ns, dev string, p netip.Prefix) error {
	l, err := h.LinkByName(dev)
	if err == nil {
		err = h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(p)})
	}
	if err != nil {
		return fmt.Errorf("netns %s: add %s to %s: %w", ns, p, dev, err)
	}
	return nil
}

func linkUp(h *netlink.Handle, ns string, devs ...string) error {
	for _, dev := range devs {
		l, err := h.LinkByName(dev)
		if err == nil {
			err = h.LinkSetUp(l)
		}
		if err != nil {
			return fmt.Errorf("netns %s: bring %s up: %w", ns, dev, err)
		}
	}
	return nil
}

// waitUp waits until dev's operational state is up: the kernel drops what
// is sent on a veth before that, and a first SYN would then wait a whole
// retransmission timeout.
func waitUp(h *netlink.Handle, ns, dev string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := h.LinkByName(dev)
		if err != nil {
			return fmt.Errorf("netns %s: %w", ns, err)
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns %s: %s is %s, not up, after 5s", ns, dev, l.Attrs().OperState)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sysctl writes value to /proc/sys/key in the calling thread's namespace.
func sysctl(key, value string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
