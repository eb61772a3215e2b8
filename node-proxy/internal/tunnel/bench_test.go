package tunnel

// Benchmarks of the three things a node proxy does with tunnels, each next
// to the same thing over a plain loopback TCP connection (and, for
// reference, a plain TLS 1.3 connection with the same certificates):
//
//	go test -run '^$' -bench . -benchmem ./node-proxy/internal/tunnel/
//
// Besides ns/op each benchmark reports cpu-ns/op: user+system CPU time
// of the whole process (client, server, backend and load) per operation,
// which moves far less than wall time when the machine is shared. Compare
// ratios within one run; absolute numbers move with the machine.

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// sinkHandler reads until EOF and answers with the byte count.
func sinkHandler(c *net.TCPConn) {
	defer c.Close()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		return
	}
	binary.Write(c, binary.BigEndian, n)
	c.CloseWrite()
}

func tcpBaseline(b *testing.B, _ *env, backend netip.AddrPort) net.Conn {
	c, err := net.Dial("tcp", backend.String())
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// tlsBaseline terminates TLS in front of backend with the server's SVID
// and dials it with the client's.
func tlsBaseline(b *testing.B, e *env, backend netip.AddrPort) net.Conn {
	cfg := serverTLSConfig(func(ConnInfo) (*x509svid.SVID, error) { return e.serverSVID, nil }, e.pki.bundle)
	cfg.NextProtos = []string{"h2"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := net.Dial("tcp", backend.String())
				if err != nil {
					c.Close()
					return
				}
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), clientTLSConfig(e.clientSVID, e.pki.bundle, e.serverID))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU resets the timer and returns a func that reports CPU per op.
func measureCPU(b *testing.B) (stop func()) {
	b.ResetTimer()
	start := cpuTime(b)
	return func() {
		b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

func newBenchEnv(b *testing.B) (*env, *Client) {
	e := newEnv(b, func(c *ServerConfig) { c.OnStreamEnd = nil })
	return e, e.client(b)
}

// BenchmarkRequestResponse is a ping-pong of small messages over one
// established stream: the L4 request path.
func BenchmarkRequestResponse(b *testing.B) {
	for _, size := range []int{128, 4096} {
		for _, path := range []struct {
			name string
			dial func(b *testing.B, e *env, cl *Client) net.Conn
		}{
			{"tunnel", func(b *testing.B, e *env, cl *Client) net.Conn { return e.mustDial(b, cl, e.echo) }},
			{"tcp", func(b *testing.B, e *env, _ *Client) net.Conn { return tcpBaseline(b, e, e.echo) }},
			{"tls", func(b *testing.B, e *env, _ *Client) net.Conn { return tlsBaseline(b, e, e.echo) }},
		} {
			b.Run(path.name+"/"+byteSize(size), func(b *testing.B) {
				e, cl := newBenchEnv(b)
				c := path.dial(b, e, cl)
				defer c.Close()
				msg, reply := make([]byte, size), make([]byte, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				stop := measureCPU(b)
				for range b.N {
					if _, err := c.Write(msg); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, reply); err != nil {
						b.Fatal(err)
					}
				}
				stop()
			})
		}
	}
}

// BenchmarkNewStream opens a connection to the backend, exchanges one
// byte and closes it: over the tunnel that is a new stream on a pooled
// connection (CONNECT, server dial, 200); the baseline is a TCP connect.
func BenchmarkNewStream(b *testing.B) {
	b.Run("tunnel", func(b *testing.B) {
		e, cl := newBenchEnv(b)
		warm := e.mustDial(b, cl, e.echo) // pool the connection
		warm.Close()
		b.ReportAllocs()
		stop := measureCPU(b)
		for range b.N {
			s := e.mustDial(b, cl, e.echo)
			pingOnce(b, s)
			s.Close()
		}
		stop()
	})
	b.Run("tcp", func(b *testing.B) {
		e, _ := newBenchEnv(b)
		b.ReportAllocs()
		stop := measureCPU(b)
		for range b.N {
			c := tcpBaseline(b, e, e.echo)
			pingOnce(b, c)
			c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up over many iterations
			c.Close()
		}
		stop()
	})
}

func pingOnce(b *testing.B, c net.Conn) {
	var buf [1]byte
	if _, err := c.Write(buf[:]); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBulk sends one direction as fast as it goes, in 64 KiB writes,
// to a backend that counts what it got.
func BenchmarkBulk(b *testing.B) {
	for _, path := range []struct {
		name string
		dial func(b *testing.B, e *env, cl *Client, sink netip.AddrPort) net.Conn
	}{
		{"tunnel", func(b *testing.B, e *env, cl *Client, sink netip.AddrPort) net.Conn { return e.mustDial(b, cl, sink) }},
		{"tcp", func(b *testing.B, e *env, _ *Client, sink netip.AddrPort) net.Conn { return tcpBaseline(b, e, sink) }},
		{"tls", func(b *testing.B, e *env, _ *Client, sink netip.AddrPort) net.Conn { return tlsBaseline(b, e, sink) }},
	} {
		b.Run(path.name, func(b *testing.B) {
			e, cl := newBenchEnv(b)
			sink := e.backend(b, sinkHandler)
			c := path.dial(b, e, cl, sink)
			defer c.Close()
			buf := make([]byte, copyBufSize)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			stop := measureCPU(b)
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			closeWrite(c)
			var n int64
			if err := binary.Read(c, binary.BigEndian, &n); err != nil {
				b.Fatal(err)
			}
			stop()
			b.StopTimer()
			if want := int64(b.N) * int64(len(buf)); n != want {
				b.Fatalf("backend got %d bytes, want %d", n, want)
			}
		})
	}
}

func byteSize(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n/1024) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// proxied starts what a pair of node proxies does for one app connection
// and returns the address the app connects to: the client side accepts
// TCP, opens a tunnel stream to dst and splices.
func proxied(b *testing.B, e *env, cl *Client, dst netip.AddrPort) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			app, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				s, err := e.dial(cl, dst, Headers{})
				if err != nil {
					app.Close()
					return
				}
				Splice(s, app)
			}()
		}
	}()
	return ln.Addr().String()
}

// tlsRelayPair is the baseline for proxied: a plain TCP-to-TLS relay on
// the client side and a TLS-to-TCP relay (tlsBaseline's) on the server
// side, one TLS connection per app connection, as the stdlib relay in
// the project's measurements.
func tlsRelayPair(b *testing.B, e *env, dst netip.AddrPort) string {
	front := tlsBaseline(b, e, dst) // dials once to learn the front's address
	frontAddr := front.RemoteAddr().String()
	front.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			app, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				up, err := tls.Dial("tcp", frontAddr, clientTLSConfig(e.clientSVID, e.pki.bundle, e.serverID))
				if err != nil {
					app.Close()
					return
				}
				go func() { io.Copy(up, app); up.CloseWrite() }()
				io.Copy(app, up)
				app.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkProxied is BenchmarkRequestResponse through the whole path an
// app connection takes: app -> client proxy (Splice) -> tunnel -> server
// proxy (Splice) -> backend, against a pair of plain TLS relays and
// against no proxy at all.
func BenchmarkProxied(b *testing.B) {
	for _, path := range []struct {
		name string
		addr func(b *testing.B, e *env, cl *Client) string
	}{
		{"tunnel", func(b *testing.B, e *env, cl *Client) string { return proxied(b, e, cl, e.echo) }},
		{"tls-relays", func(b *testing.B, e *env, _ *Client) string { return tlsRelayPair(b, e, e.echo) }},
		{"direct", func(b *testing.B, e *env, _ *Client) string { return e.echo.String() }},
	} {
		b.Run(path.name+"/128B", func(b *testing.B) {
			e, cl := newBenchEnv(b)
			c, err := net.Dial("tcp", path.addr(b, e, cl))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			msg, reply := make([]byte, 128), make([]byte, 128)
			b.ReportAllocs()
			stop := measureCPU(b)
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, reply); err != nil {
					b.Fatal(err)
				}
			}
			stop()
		})
	}
}
