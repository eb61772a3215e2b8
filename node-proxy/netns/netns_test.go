//go:build linux

package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
	"github.com/weftmesh/weft/node-proxy/netns/netnstest"
)

// newNS creates a test namespace and checks, when the test ends, that no
// thread was left in a foreign namespace.
func newNS(t *testing.T) *netns.NS {
	t.Helper()
	netnstest.RequireRoot(t)
	t.Cleanup(func() { netnstest.CheckThreads(t) })
	return netnstest.New(t, "weft-nstest")
}

// inode returns the "net:[N]" identity of a namespace or of the namespace of
// a socket.
func nsID(t *testing.T, fd int) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// socketNS returns the identity of the namespace a socket lives in.
func socketNS(t *testing.T, c syscall.Conn) string {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var id string
	var nsErr error
	if err := rc.Control(func(fd uintptr) {
		nsfd, err := unix.IoctlRetInt(int(fd), unix.SIOCGSKNS)
		if err != nil {
			nsErr = err
			return
		}
		defer unix.Close(nsfd)
		id = nsID(t, nsfd)
	}); err != nil {
		t.Fatal(err)
	}
	if nsErr != nil {
		t.Fatalf("ioctl(SIOCGSKNS): %v", nsErr)
	}
	return id
}

// greet serves l: every accepted connection is sent "hello <remote>\n" and
// closed. It stops when the test ends.
func greet(t *testing.T, l net.Listener) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
}

func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v", c.RemoteAddr(), err)
	}
	return line[:len(line)-1]
}

func TestOpen(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("!!! SKIPPING: needs Linux")
	}
	ns, err := netns.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("Open(/proc/self/ns/net): %v", err)
	}
	if got := ns.String(); got != "/proc/self/ns/net" {
		t.Errorf("String() = %q, want the path", got)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := ns.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
	if got := ns.Fd(); got != -1 {
		t.Errorf("Fd() after Close = %d, want -1", got)
	}
	if err := netns.Do(ns, func() error { return nil }); !errors.Is(err, netns.ErrClosed) {
		t.Errorf("Do on a closed NS: %v, want ErrClosed", err)
	}

	for _, path := range []string{"/proc/self/ns/uts", "/proc/self/status", "/nonexistent/weft"} {
		if ns, err := netns.Open(path); err == nil {
			ns.Close()
			t.Errorf("Open(%s) succeeded, want an error", path)
		}
	}
}

func TestFromFD(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("!!! SKIPPING: needs Linux")
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := netns.FromFD(int(f.Fd())); err == nil {
		t.Fatal("FromFD(regular file) succeeded, want an error")
	}
	if _, err := f.Stat(); err != nil {
		t.Errorf("FromFD closed a descriptor it refused: %v", err)
	}
	if _, err := netns.FromFD(-1); err == nil {
		t.Error("FromFD(-1) succeeded, want an error")
	}

	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.FromFD(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("FromFD(netns): %v", err)
	}
	if got, want := ns.String(), fmt.Sprintf("fd %d", fd); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	ns.Close()
}

func TestDoEntersAndLeaves(t *testing.T) {
	ns := newNS(t)
	home, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	want := nsID(t, ns.Fd())
	var inside string
	if err := netns.Do(ns, func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != want {
		t.Errorf("inside Do the thread is in %s, want %s", inside, want)
	}
	if inside == home {
		t.Errorf("inside Do the thread stayed home (%s)", home)
	}
	after, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if after != home {
		t.Errorf("after Do the caller's thread is in %s, want %s", after, home)
	}

	wantErr := errors.New("from fn")
	if err := netns.Do(ns, func() error { return wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := netns.Do(ns, func() error { runtime.Goexit(); return nil }); err == nil {
		t.Error("Do with runtime.Goexit returned nil, want an error")
	}
}

func TestDoPanicReachesCaller(t *testing.T) {
	ns := newNS(t)
	defer func() {
		if p := recover(); p != "boom" {
			t.Errorf("recovered %v, want boom", p)
		}
	}()
	netns.Do(ns, func() error { panic("boom") })
	t.Error("Do returned after a panic")
}

func TestDoConcurrent(t *testing.T) {
	ns := newNS(t)
	want := nsID(t, ns.Fd())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				err := netns.Do(ns, func() error {
					got, err := os.Readlink("/proc/thread-self/ns/net")
					if err != nil {
						return err
					}
					if got != want {
						return fmt.Errorf("in %s, want %s", got, want)
					}
					fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
					if err != nil {
						return err
					}
					return unix.Close(fd)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestListenAndDialInNamespace(t *testing.T) {
	a := newNS(t)
	b := netnstest.New(t, "weft-nstest")

	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			l, err := netns.Listen(a, tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			greet(t, l)
			if got, want := socketNS(t, l.(*net.TCPListener)), nsID(t, a.Fd()); got != want {
				t.Fatalf("listener lives in %s, want %s", got, want)
			}
			addr := l.Addr().String()

			d := netns.Dialer{NS: a, Mark: 0x539, Timeout: 5 * time.Second}
			c, err := d.DialContext(context.Background(), "tcp", addr)
			if err != nil {
				t.Fatalf("dial %s in netns a: %v", addr, err)
			}
			defer c.Close()
			tc := c.(*net.TCPConn)
			if got, want := socketNS(t, tc), nsID(t, a.Fd()); got != want {
				t.Errorf("dialed socket lives in %s, want %s", got, want)
			}
			if got := c.RemoteAddr().String(); got != addr {
				t.Errorf("RemoteAddr() = %s, want %s", got, addr)
			}
			if got, want := readLine(t, c), "hello "+c.LocalAddr().String(); got != want {
				t.Errorf("server said %q, want %q", got, want)
			}
			rc, _ := tc.SyscallConn()
			var mark int
			var markErr error
			rc.Control(func(fd uintptr) { mark, markErr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK) })
			if markErr != nil || mark != 0x539 {
				t.Errorf("SO_MARK = %#x (%v), want 0x539", mark, markErr)
			}

			// The same address in another namespace has no listener.
			other := netns.Dialer{NS: b, Timeout: 5 * time.Second}
			if c, err := other.DialContext(context.Background(), "tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
				if c != nil {
					c.Close()
				}
				t.Errorf("dial %s in netns b: %v, want connection refused", addr, err)
			}
		})
	}
}

func TestDialerLocalAddr(t *testing.T) {
	ns := newNS(t)
	l, err := netns.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	greet(t, l)
	for _, local := range []string{"127.0.0.7:0", "127.0.0.8:41234"} {
		d := netns.Dialer{NS: ns, LocalAddr: netip.MustParseAddrPort(local), Timeout: 5 * time.Second}
		c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
		if err != nil {
			t.Fatalf("dial from %s: %v", local, err)
		}
		got := readLine(t, c)
		c.Close()
		la := c.LocalAddr().(*net.TCPAddr).AddrPort()
		if want := "hello " + la.String(); got != want {
			t.Errorf("server said %q, want %q", got, want)
		}
		if want := netip.MustParseAddrPort(local); la.Addr() != want.Addr() || (want.Port() != 0 && la.Port() != want.Port()) {
			t.Errorf("local address %s, want %s", la, local)
		}
	}
}

func TestDialerErrors(t *testing.T) {
	ns := newNS(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name          string
		d             netns.Dialer
		network, addr string
	}{
		{"hostname", netns.Dialer{NS: ns}, "tcp", "localhost:80"},
		{"udp", netns.Dialer{NS: ns}, "udp", "127.0.0.1:53"},
		{"tcp4 with IPv6", netns.Dialer{NS: ns}, "tcp4", "[::1]:80"},
		{"tcp6 with IPv4", netns.Dialer{NS: ns}, "tcp6", "127.0.0.1:80"},
		{"no port", netns.Dialer{NS: ns}, "tcp", "127.0.0.1"},
		{"local family mismatch", netns.Dialer{NS: ns, LocalAddr: netip.MustParseAddrPort("[::1]:0")}, "tcp", "127.0.0.1:80"},
		{"local address not in netns", netns.Dialer{NS: ns, LocalAddr: netip.MustParseAddrPort("192.0.2.1:0")}, "tcp", "127.0.0.1:80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.d.DialContext(ctx, tc.network, tc.addr)
			if err == nil {
				c.Close()
				t.Fatalf("dial %s %s succeeded, want an error", tc.network, tc.addr)
			}
			var op *net.OpError
			if !errors.As(err, &op) {
				t.Errorf("error %v is %T, want *net.OpError", err, err)
			}
		})
	}

	// Nothing listens on this port in a fresh namespace.
	d := netns.Dialer{NS: ns}
	if _, err := d.DialContext(ctx, "tcp", "127.0.0.1:9"); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a closed port: %v, want connection refused", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := d.DialContext(canceled, "tcp", "127.0.0.1:9"); !errors.Is(err, context.Canceled) {
		t.Errorf("dial with a canceled context: %v, want context.Canceled", err)
	}
}

// TestDialerTimeout dials an unassigned address on a veth link: the SYN
// waits for an ARP answer that never comes, so the handshake does not end by
// itself within the test's bounds.
func TestDialerTimeout(t *testing.T) {
	ns := newNS(t)
	peer := netnstest.New(t, "weft-nstest")
	sfx := netnstest.Suffix(t, 6)
	netnstest.Veth(t,
		netnstest.End{NS: ns, Name: "wa" + sfx, Addrs: []netip.Prefix{netip.MustParsePrefix("10.201.77.1/24")}},
		netnstest.End{NS: peer, Name: "wb" + sfx, Addrs: []netip.Prefix{netip.MustParsePrefix("10.201.77.2/24")}},
	)
	const blackhole = "10.201.77.50:80"

	d := netns.Dialer{NS: ns, Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := d.DialContext(context.Background(), "tcp", blackhole)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("dial with Timeout: %v, want a timeout error", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("dial with a 200ms timeout took %s", el)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = (&netns.Dialer{NS: ns}).DialContext(ctx, "tcp", blackhole)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("dial canceled mid-handshake: %v, want context.Canceled", err)
	}
}

func TestListenRejects(t *testing.T) {
	ns := newNS(t)
	for _, tc := range []struct{ network, addr string }{
		{"tcp", "localhost:0"},
		{"udp", ":0"},
		{"tcp", ":http"},
		{"tcp", ":70000"},
		{"tcp", "[fe80::1%lo]:0"},
	} {
		if l, err := netns.Listen(ns, tc.network, tc.addr); err == nil {
			l.Close()
			t.Errorf("Listen(%s, %s) succeeded, want an error", tc.network, tc.addr)
		}
	}
}

// TestOriginalDstNotRedirected: on a connection no NAT rule touched,
// OriginalDst must not invent an address.
func TestOriginalDstNotRedirected(t *testing.T) {
	ns := newNS(t)
	l, err := netns.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := netns.Dialer{NS: ns, Timeout: 5 * time.Second}
	c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := netns.OriginalDst(s.(*net.TCPConn))
	switch {
	case errors.Is(err, syscall.ENOENT):
		// conntrack does not track this namespace: nothing to report.
	case err != nil:
		t.Errorf("OriginalDst: %v, want ENOENT or the local address", err)
	case got.String() != l.Addr().String():
		t.Errorf("OriginalDst = %s, want the local address %s", got, l.Addr())
	}
}

// BenchmarkDo is the cost of entering a namespace to create one socket.
func BenchmarkDo(b *testing.B) {
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "weft-nsbench")
	for b.Loop() {
		err := netns.Do(ns, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			return unix.Close(fd)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDial is a marked dial inside a namespace, over its loopback,
// accepted and closed.
func BenchmarkDial(b *testing.B) {
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "weft-nsbench")
	l, err := netns.Listen(ns, "tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	d := netns.Dialer{NS: ns, Mark: 0x539}
	ctx := context.Background()
	for b.Loop() {
		c, err := d.DialContext(ctx, "tcp", l.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}
