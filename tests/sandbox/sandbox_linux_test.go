//go:build linux

package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary, re-executed inside a pod, print its IPv4
// addresses and what helperHost (or the comma-separated names in
// helperHostsEnv) resolves to, and exit.
const (
	helperEnv      = "WEFT_SANDBOX_TEST_HELPER"
	helperHostsEnv = "WEFT_SANDBOX_TEST_HELPER_HOSTS"
	helperHost     = "echo.demo.svc.cluster.local"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(helper())
	}
	code := m.Run()
	removeBinaries()
	os.Exit(code)
}

func helper() int {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			fmt.Printf("addr %s\n", p.Addr())
		}
	}
	hosts := []string{helperHost}
	if v := os.Getenv(helperHostsEnv); v != "" {
		hosts = strings.Split(v, ",")
	}
	for _, h := range hosts {
		ips, err := net.DefaultResolver.LookupHost(context.Background(), h)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("resolved %s %s\n", h, strings.Join(ips, ","))
	}
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING: needs root on Linux: network namespaces and veth pairs (running as uid %d)", os.Geteuid())
	}
}

func uniqueName(t *testing.T, prefix string) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

func up(t *testing.T, top Topology) *Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := top.Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return s
}

func TestSandbox(t *testing.T) {
	requireRoot(t)
	name := uniqueName(t, "wst")
	s := up(t, Topology{Name: name, Nodes: 2, PodsPerNode: 2})
	pods := map[string]Pod{}
	for _, p := range s.Pods() {
		pods[strings.TrimPrefix(p.Name, name+"-")] = p
	}
	if len(pods) != 4 || len(s.Nodes()) != 2 {
		t.Fatalf("got pods %v and nodes %v, want 4 pods on 2 nodes", s.Pods(), s.Nodes())
	}
	if st, err := os.Stat(s.Dir()); err != nil || !st.IsDir() {
		t.Errorf("Dir %s: got %v, want a directory", s.Dir(), err)
	}

	t.Run("pod to pod", func(t *testing.T) {
		for _, tc := range []struct{ from, to string }{
			{"n0-p1", "n1-p0"}, // across nodes, through the underlay
			{"n1-p1", "n0-p0"},
			{"n0-p0", "n0-p1"}, // same node, through the node
		} {
			from, to := pods[tc.from], pods[tc.to]
			got := roundTrip(t, from, to)
			if got != from.IP {
				t.Errorf("%s -> %s: server saw client %s, want %s (no NAT)", tc.from, tc.to, got, from.IP)
			}
		}
	})

	t.Run("underlay carries pod traffic", func(t *testing.T) {
		// Capture on node n1's eth0 while n0-p1 talks to n1-p0.
		from, to := pods["n0-p1"], pods["n1-p0"]
		n1 := s.Nodes()[1]
		seen := make(chan error, 1)
		ready := make(chan struct{})
		go func() { seen <- capture(n1.NetNSPath, "eth0", from.IP, to.IP, ready) }()
		<-ready
		roundTrip(t, from, to)
		if err := <-seen; err != nil {
			t.Error(err)
		}
	})

	t.Run("process sees its pod IP and hosts", func(t *testing.T) {
		if err := s.WriteHosts(map[string]string{helperHost: "10.96.0.10"}); err != nil {
			t.Fatal(err)
		}
		hostsBefore, _ := os.ReadFile("/etc/hosts")
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		pod := pods["n1-p1"]
		p, err := s.Start(pod.NetNSPath, []string{exe}, append(os.Environ(), helperEnv+"=1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("helper: %v: %s", err, p.Output())
		}
		out := string(p.Output())
		for _, want := range []string{"addr 127.0.0.1\n", "addr " + pod.IP.String() + "\n", "resolved " + helperHost + " 10.96.0.10\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("helper in %s printed %q, want a line %q", pod.Name, out, want)
			}
		}
		if strings.Count(out, "addr ") != 2 {
			t.Errorf("helper in %s printed %q, want exactly 2 addresses", pod.Name, out)
		}
		if hostsAfter, _ := os.ReadFile("/etc/hosts"); !bytes.Equal(hostsBefore, hostsAfter) {
			t.Errorf("/etc/hosts of the host changed")
		}

		// Exec, in a node: no hosts file there, the node's own address.
		stdout, err := s.Exec(context.Background(), s.Nodes()[0].NetNSPath, "cat", "/proc/net/fib_trie")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(stdout), s.Nodes()[0].IP.String()) {
			t.Errorf("fib_trie in node 0 lacks its IP %s:\n%s", s.Nodes()[0].IP, stdout)
		}
	})

	t.Run("Down removes everything", func(t *testing.T) {
		p, err := s.Start(pods["n0-p0"].NetNSPath, []string{"sleep", "1000"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		select {
		case <-p.Done():
		default:
			t.Errorf("process %d still runs after Down", p.PID)
		}
		checkGone(t, name)
		if err := s.Down(); err != nil {
			t.Errorf("second Down: %v", err)
		}
		if _, err := s.Start(pods["n0-p0"].NetNSPath, []string{"true"}, nil); err == nil {
			t.Errorf("Start after Down: got no error, want one")
		}
	})
	checkThreads(t)
}

func TestCleanupAfterCrash(t *testing.T) {
	requireRoot(t)
	name := uniqueName(t, "wsc")
	top := Topology{Name: name, Nodes: 2, PodsPerNode: 1}
	s, err := top.Up(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WriteHosts(map[string]string{"a": "10.96.0.1"}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Start(s.Pods()[1].NetNSPath, []string{"sleep", "1000"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cmdlineIs(p.PID, []string{"sleep", "1000"}) {
		t.Fatalf("process %d: cmdline does not match", p.PID)
	}
	// The "crash": s is dropped without Down.
	s = nil

	// A new run of the same name first cleans up, then builds.
	s2 := up(t, top)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("process %d still runs after Up cleaned up", p.PID)
	}
	if _, err := os.Stat(filepath.Join(EtcDir, s2.Pods()[0].Name, "hosts")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("hosts file of the crashed run: got %v, want it gone", err)
	}
	roundTrip(t, s2.Pods()[0], s2.Pods()[1])

	// Crash again, then Cleanup alone.
	p2, err := s2.Start(s2.Nodes()[0].NetNSPath, []string{"sleep", "1001"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(name); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	select {
	case <-p2.Done():
	case <-time.After(5 * time.Second):
		t.Errorf("process %d still runs after Cleanup", p2.PID)
	}
	checkGone(t, name)
	if err := Cleanup(name); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

func TestCleanupSparesOthers(t *testing.T) {
	requireRoot(t)
	name := uniqueName(t, "wso")
	// A namespace whose name only starts like ours must survive.
	other := name + "0-n0"
	if err := createNetNS(other); err != nil {
		t.Fatal(err)
	}
	defer deleteNetNS(other)
	if err := Cleanup(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nsPath(other)); err != nil {
		t.Errorf("Cleanup(%s) removed %s: %v", name, other, err)
	}
	// A state entry whose PID now runs something else is not killed.
	sleep := exec.Command("sleep", "1000")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	if err := writeState(&state{Name: name, Processes: []stateProcess{{PID: sleep.Process.Pid, Argv: []string{"sleep", "999"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := Cleanup(name); err != nil {
		t.Fatal(err)
	}
	if err := sleep.Process.Signal(unix.Signal(0)); err != nil {
		t.Errorf("Cleanup killed process %d, which did not match the recorded command: %v", sleep.Process.Pid, err)
	}
}

// roundTrip listens in to, connects from from, echoes a message, and
// returns the client address the server saw.
func roundTrip(t *testing.T, from, to Pod) netip.Addr {
	t.Helper()
	l, err := Listen(to.NetNSPath, "tcp4", to.IP.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan netip.Addr, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			peer <- netip.Addr{}
			return
		}
		defer c.Close()
		peer <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
		io.Copy(c, c)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, from.NetNSPath, "tcp4", l.Addr().String())
	if err != nil {
		t.Fatalf("%s -> %s: %v", from.Name, to.Name, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := "hello from " + from.Name
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("%s -> %s: echo got %q, %v; want %q", from.Name, to.Name, buf, err, msg)
	}
	return <-peer
}

// capture waits up to 5s, on dev in the namespace at netnsPath, for an IPv4
// packet from src to dst, closing ready once it listens.
func capture(netnsPath, dev string, src, dst netip.Addr, ready chan<- struct{}) error {
	var be [2]byte
	binary.BigEndian.PutUint16(be[:], unix.ETH_P_IP)
	proto := int(binary.NativeEndian.Uint16(be[:])) // htons
	fd := -1
	err := inNetNS(netnsPath, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index})
	})
	close(ready)
	if fd >= 0 {
		defer unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("capture on %s in %s: %w", dev, netnsPath, err)
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 20 {
			continue
		}
		s, _ := netip.AddrFromSlice(buf[12:16])
		d, _ := netip.AddrFromSlice(buf[16:20])
		if s == src && d == dst {
			return nil
		}
	}
	return fmt.Errorf("no packet %s -> %s seen on %s in %s within 5s", src, dst, dev, netnsPath)
}

// checkGone fails t if anything of sandbox name is left: a namespace, a link
// in this namespace, a hosts file, the state file.
func checkGone(t *testing.T, name string) {
	t.Helper()
	left, err := ownedNamespaces(name)
	if err != nil || len(left) > 0 {
		t.Errorf("namespaces left in %s: %v (%v)", RunDir, left, err)
	}
	entries, _ := os.ReadDir(RunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			t.Errorf("left in %s: %s", RunDir, e.Name())
		}
	}
	entries, _ = os.ReadDir(EtcDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			t.Errorf("left in %s: %s", EtcDir, e.Name())
		}
	}
	if _, err := os.Stat(statePath(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file %s: got %v, want it gone", statePath(name), err)
	}
	if _, err := os.Stat(dirPath(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch dir %s: got %v, want it gone", dirPath(name), err)
	}
	out, err := exec.Command("ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	if strings.Contains(string(out), name) {
		t.Errorf("links named after %s in the root netns:\n%s", name, out)
	}
}

// checkThreads fails t if an OS thread of the test is left in another
// network namespace.
func checkThreads(t *testing.T) {
	t.Helper()
	want, _ := os.Readlink("/proc/self/ns/net")
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		got, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err == nil && got != want {
			t.Errorf("thread %s in netns %s, want %s", task.Name(), got, want)
		}
	}
}
