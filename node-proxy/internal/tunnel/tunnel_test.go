package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

func TestEchoRoundTrip(t *testing.T) {
	var authPeer Peer
	var authDst netip.AddrPort
	e := newEnv(t, func(c *ServerConfig) {
		c.Authorize = func(_ context.Context, p Peer, dst netip.AddrPort) error {
			authPeer, authDst = p, dst
			return nil
		}
	})
	cl := e.client(t)
	hdr := Headers{
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Tracestate:  "weft=1",
		Baggage:     "k=v",
		Forwarded:   "for=10.0.0.1",
	}
	s, err := e.dial(cl, e.echo, hdr)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.PeerID(); got != e.serverID {
		t.Errorf("PeerID() = %s, want %s", got, e.serverID)
	}
	msg := []byte("hello through the tunnel")
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("echo = %q, want %q", got, msg)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(s); err != nil || len(rest) != 0 {
		t.Errorf("after CloseWrite: read %q, %v; want EOF", rest, err)
	}
	s.Close()

	end := e.nextEnd(t)
	if end.Status != 200 || end.Err != nil {
		t.Errorf("server end: status %d err %v, want 200 and nil", end.Status, end.Err)
	}
	if end.Headers != hdr {
		t.Errorf("server saw headers %+v, want %+v", end.Headers, hdr)
	}
	if end.Rx != int64(len(msg)) || end.Tx != int64(len(msg)) {
		t.Errorf("server counted rx %d tx %d, want %d each", end.Rx, end.Tx, len(msg))
	}
	if authPeer.ID != e.clientSVID.ID || authDst != e.echo {
		t.Errorf("Authorize(%s, %s), want (%s, %s)", authPeer.ID, authDst, e.clientSVID.ID, e.echo)
	}
	if authPeer.Local != e.addr {
		t.Errorf("Peer.Local = %s, want the listener %s", authPeer.Local, e.addr)
	}
	if got := counterValue(e.srv.m.bytesRx); got != float64(len(msg)) {
		t.Errorf("inbound rx bytes = %v, want %d", got, len(msg))
	}
}

func TestManyStreamsShareOneConnection(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	// One stream first, so the server's SETTINGS (its stream limit) are
	// known before the burst.
	s := e.mustDial(t, cl, e.echo)
	s.Close()

	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := e.dial(cl, e.echo, Headers{})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			msg := fmt.Appendf(nil, "stream %d says hello", i)
			if _, err := s.Write(msg); err != nil {
				errs <- err
				return
			}
			if err := s.CloseWrite(); err != nil {
				errs <- err
				return
			}
			got, err := io.ReadAll(s)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("stream %d: echo %q, want %q", i, got, msg)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.ln.accepts.Load(); got != 1 {
		t.Errorf("server accepted %d connections, want 1", got)
	}
}

func TestHalfClose(t *testing.T) {
	e := newEnv(t)
	// The backend reads until EOF, then answers with what it got.
	backend := e.backend(t, func(c *net.TCPConn) {
		defer c.Close()
		got, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes: %s", len(got), got)
		c.CloseWrite()
	})
	cl := e.client(t)
	s := e.mustDial(t, cl, backend)
	defer s.Close()
	if _, err := io.WriteString(s, "question"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("more")); err == nil {
		t.Error("Write after CloseWrite succeeded")
	}
	reply, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := "got 8 bytes: question"; string(reply) != want {
		t.Errorf("reply = %q, want %q", reply, want)
	}
}

func TestLargeTransferIntegrity(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 8 << 20
	}
	e := newEnv(t)
	cl := e.client(t)
	s := e.mustDial(t, cl, e.echo)
	defer s.Close()

	sent := sha256.New()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 100_000) // not a multiple of any frame or chunk size
		left := size
		for left > 0 {
			b := buf[:min(left, len(buf))]
			rand.Read(b)
			sent.Write(b)
			if _, err := s.Write(b); err != nil {
				done <- err
				return
			}
			left -= len(b)
		}
		done <- s.CloseWrite()
	}()
	recv := sha256.New()
	n, err := io.Copy(recv, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n != int64(size) {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	if !bytes.Equal(sent.Sum(nil), recv.Sum(nil)) {
		t.Error("received data differs from what was sent")
	}
}

func TestWrongServerIdentityRefused(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	want := e.pki.svid(t, "dst", "someone-else").ID
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err := cl.Dial(ctx, e.clientSVID, want, e.addr, e.echo, Headers{})
	var ie *IdentityError
	if !errors.As(err, &ie) {
		t.Fatalf("Dial error = %v, want an IdentityError", err)
	}
	if ie.Got != e.serverID || ie.Want != want {
		t.Errorf("IdentityError{Want: %s, Got: %s}, want {%s, %s}", ie.Want, ie.Got, want, e.serverID)
	}
	if got := counterValue(cl.m.handshakeFailures[hsWrongIdentity]); got != 1 {
		t.Errorf("outbound wrong_identity failures = %v, want 1", got)
	}
}

func TestForeignClientCertificateRefused(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	foreign := newPKI(t).svid(t, "src", "client") // same ID, another CA
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if s, err := cl.Dial(ctx, foreign, e.serverID, e.addr, e.echo, Headers{}); err == nil {
		s.Close()
		t.Fatal("Dial with a foreign certificate succeeded")
	}
	// TLS 1.3 clients finish their handshake before the server checks
	// their certificate, so Dial may retry on a connection it believes
	// fresh; every attempt must be refused and counted.
	accepted := e.ln.accepted()
	for _, c := range accepted {
		waitClosed(t, c)
	}
	if got := counterValue(e.srv.m.handshakeFailures[hsBadCertificate]); got != float64(len(accepted)) || got == 0 {
		t.Errorf("inbound bad_certificate failures = %v, want %d (one per connection)", got, len(accepted))
	}
	// A good client is still served.
	s := e.mustDial(t, cl, e.echo)
	s.Close()
}

func TestAuthorizationRefusals(t *testing.T) {
	e := newEnv(t, func(c *ServerConfig) {
		c.Authorize = func(_ context.Context, p Peer, dst netip.AddrPort) error {
			switch dst.Port() {
			case 1:
				return fmt.Errorf("policy deny-all: %w", ErrDenied)
			case 2:
				return fmt.Errorf("no identity: %w", ErrUnauthenticated)
			}
			return nil
		}
	})
	deny := netip.AddrPortFrom(e.echo.Addr(), 1)
	unauth := netip.AddrPortFrom(e.echo.Addr(), 2)
	e.mu.Lock()
	e.local[deny], e.local[unauth] = true, true
	e.mu.Unlock()
	cl := e.client(t)
	for _, tc := range []struct {
		dst    netip.AddrPort
		status int
		reason string
	}{
		{deny, 403, reasonForbidden},
		{unauth, 401, reasonUnauthenticated},
	} {
		_, err := e.dial(cl, tc.dst, Headers{})
		if code, ok := StatusCode(err); !ok || code != tc.status {
			t.Errorf("Dial(%s) error = %v, want status %d", tc.dst, err, tc.status)
		}
		end := e.nextEnd(t)
		if end.Status != tc.status || end.Reason != tc.reason {
			t.Errorf("server end = %d %s, want %d %s", end.Status, end.Reason, tc.status, tc.reason)
		}
		if got := counterValue(e.srv.m.refusals[tc.reason]); got != 1 {
			t.Errorf("refusals{reason=%s} = %v, want 1", tc.reason, got)
		}
	}
	// The connection survives refusals.
	s := e.mustDial(t, cl, e.echo)
	s.Close()
	if got := e.ln.accepts.Load(); got != 1 {
		t.Errorf("server accepted %d connections, want 1", got)
	}
}

func TestAuthorityNotLocalRefused(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	elsewhere := netip.MustParseAddrPort("10.9.8.7:80")
	_, err := e.dial(cl, elsewhere, Headers{})
	if code, ok := StatusCode(err); !ok || code != 400 {
		t.Fatalf("Dial to a pod on another node: %v, want status 400", err)
	}
	if end := e.nextEnd(t); end.Reason != reasonNotLocal {
		t.Errorf("reason = %q, want %q", end.Reason, reasonNotLocal)
	}
}

func TestDestinationDialFailure(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := addrPort(ln.Addr())
	ln.Close() // nothing listens there now
	e.mu.Lock()
	e.local[dead] = true
	e.mu.Unlock()
	cl := e.client(t)
	_, err = e.dial(cl, dead, Headers{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("Dial to a closed port: %v, want a 503 StatusError", err)
	}
	if end := e.nextEnd(t); end.Reason != reasonDialFailed || end.Err == nil {
		t.Errorf("server end = %q %v, want %q and the dial error", end.Reason, end.Err, reasonDialFailed)
	}
}

func TestPeerClosesMidStream(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	s1 := e.mustDial(t, cl, e.echo)
	s2 := e.mustDial(t, cl, e.echo)
	readErr := make(chan error, 2)
	for _, s := range []*Stream{s1, s2} {
		go func() {
			_, err := io.ReadAll(s) // blocks: the echo waits for our EOF
			readErr <- err
		}()
	}
	e.ln.accepted()[0].Conn.Close() // the server's TCP connection dies
	for range 2 {
		select {
		case err := <-readErr:
			var ce *ConnError
			if !errors.As(err, &ce) {
				t.Errorf("Read error = %v, want a ConnError", err)
			}
		case <-time.After(testWait):
			t.Fatal("Read did not fail after the connection died")
		}
	}
	if _, err := s1.Write([]byte("x")); err == nil {
		t.Error("Write on a dead connection succeeded")
	}
}

func TestPoolReplacesDeadConnection(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	s := e.mustDial(t, cl, e.echo)
	e.ln.accepted()[0].Conn.Close()
	if _, err := io.ReadAll(s); err == nil {
		t.Fatal("stream survived its connection")
	}
	s = e.mustDial(t, cl, e.echo)
	defer s.Close()
	if _, err := s.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	if got, err := io.ReadAll(s); err != nil || string(got) != "again" {
		t.Errorf("echo on the new connection = %q, %v", got, err)
	}
	if got := e.ln.accepts.Load(); got != 2 {
		t.Errorf("server accepted %d connections, want 2", got)
	}
}

// blackhole forwards TCP between a client and addr until frozen; then it
// silently stops forwarding, as a dead network path would.
type blackhole struct {
	ln     net.Listener
	frozen chan struct{}
	once   sync.Once
}

func newBlackhole(t *testing.T, addr netip.AddrPort) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, frozen: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr.String())
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); up.Close() })
			go b.pipe(up, c)
			go b.pipe(c, up)
		}
	}()
	return b
}

func (b *blackhole) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-b.frozen:
			<-make(chan struct{}) // swallow everything, forever (until cleanup closes src)
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *blackhole) freeze() { b.once.Do(func() { close(b.frozen) }) }

func TestKeepAliveDetectsDeadPath(t *testing.T) {
	e := newEnv(t)
	bh := newBlackhole(t, e.addr)
	via := addrPort(bh.ln.Addr())
	cl := e.client(t, func(c *ClientConfig) {
		c.KeepAliveInterval = 20 * time.Millisecond
		c.KeepAliveTimeout = 20 * time.Millisecond
		c.Dial = func(ctx context.Context, _ netip.AddrPort) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", via.String())
		}
	})
	s := e.mustDial(t, cl, e.echo)
	bh.freeze()
	errc := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(s)
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, errKeepAliveTimeout) {
			t.Errorf("Read error = %v, want the keepalive timeout", err)
		}
	case <-time.After(testWait):
		t.Fatal("dead path not detected")
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t, func(c *ClientConfig) { c.IdleTimeout = 30 * time.Millisecond })
	s := e.mustDial(t, cl, e.echo)
	s.CloseWrite()
	if _, err := io.ReadAll(s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The client closes the idle connection; the server sees it go.
	waitClosed(t, e.ln.accepted()[0])
	s = e.mustDial(t, cl, e.echo)
	s.Close()
	if got := e.ln.accepts.Load(); got != 2 {
		t.Errorf("server accepted %d connections, want 2", got)
	}
}

func TestClientRespectsMaxConcurrentStreams(t *testing.T) {
	e := newEnv(t, func(c *ServerConfig) { c.MaxConcurrentStreams = 2 })
	cl := e.client(t)
	s := e.mustDial(t, cl, e.echo) // learn the server's SETTINGS
	s.Close()
	var open []*Stream
	for range 5 {
		open = append(open, e.mustDial(t, cl, e.echo))
	}
	if got := e.ln.accepts.Load(); got != 3 {
		t.Errorf("5 streams with a limit of 2 used %d connections, want 3", got)
	}
	for i, s := range open {
		msg := fmt.Sprint("stream ", i)
		io.WriteString(s, msg)
		s.CloseWrite()
		if got, err := io.ReadAll(s); err != nil || string(got) != msg {
			t.Errorf("stream %d echo = %q, %v", i, got, err)
		}
		s.Close()
	}
}

func TestBackendResetReachesClient(t *testing.T) {
	e := newEnv(t)
	backend := e.backend(t, func(c *net.TCPConn) {
		buf := make([]byte, 1)
		c.Read(buf)
		c.SetLinger(0)
		c.Close()
	})
	cl := e.client(t)
	s := e.mustDial(t, cl, backend)
	defer s.Close()
	s.Write([]byte("x"))
	_, err := io.ReadAll(s)
	var re *ResetError
	if !errors.As(err, &re) || !re.Remote || re.Code != http2.ErrCodeConnect {
		t.Errorf("Read error = %v, want a remote CONNECT_ERROR reset", err)
	}
}

func TestClientCloseResetsServerSide(t *testing.T) {
	e := newEnv(t)
	gotEOF := make(chan error, 1)
	backend := e.backend(t, func(c *net.TCPConn) {
		defer c.Close()
		_, err := io.Copy(io.Discard, c)
		gotEOF <- err
	})
	cl := e.client(t)
	s := e.mustDial(t, cl, backend)
	s.Write([]byte("partial"))
	s.Close() // the peer may still send: this is a reset, not a FIN
	select {
	case err := <-gotEOF:
		if err == nil {
			t.Error("backend saw a clean EOF, want a reset")
		}
	case <-time.After(testWait):
		t.Fatal("backend connection not closed")
	}
	if end := e.nextEnd(t); end.Err == nil {
		t.Error("server recorded a clean end for a reset stream")
	}
}

func TestReadDeadline(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	s := e.mustDial(t, cl, e.echo)
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	s.SetReadDeadline(time.Time{})
	io.WriteString(s, "ok")
	got := make([]byte, 2)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "ok" {
		t.Errorf("Read after clearing the deadline = %q, %v", got, err)
	}
}

func TestShutdownWaitsForStreams(t *testing.T) {
	e := newEnv(t)
	cl := e.client(t)
	s := e.mustDial(t, cl, e.echo)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		shut <- e.srv.Shutdown(ctx)
	}()
	// The stream still works while the server drains.
	io.WriteString(s, "draining")
	s.CloseWrite()
	if got, err := io.ReadAll(s); err != nil || string(got) != "draining" {
		t.Errorf("echo during shutdown = %q, %v", got, err)
	}
	s.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown = %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("Shutdown did not return after the last stream ended")
	}
	if _, err := e.dial(cl, e.echo, Headers{}); err == nil {
		t.Error("Dial after Shutdown succeeded")
	}
}

// Unread data dropped by Close must go back to the connection's window,
// or after 16 MiB of it the whole pooled connection stalls.
func TestClosedStreamsReturnConnectionWindow(t *testing.T) {
	e := newEnv(t)
	const burst = 1 << 20
	firehose := e.backend(t, func(c *net.TCPConn) {
		defer c.Close()
		c.Write(make([]byte, burst))
		io.Copy(io.Discard, c)
	})
	cl := e.client(t)
	for range 3 * connWindow / burst / 2 { // 24 MiB in all, more than the window
		s := e.mustDial(t, cl, firehose)
		s.SetReadDeadline(time.Now().Add(testWait))
		if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
			t.Fatalf("data stopped arriving (the connection window leaked?): %v", err)
		}
		// Wait until the rest sits unread in the stream's buffer.
		s.mu.Lock()
		for s.buffered < burst-1 && s.rerr == nil && !s.rdl.exceeded {
			s.cond.Wait()
		}
		stalled := s.buffered < burst-1
		s.mu.Unlock()
		if stalled {
			t.Fatal("data stopped arriving: the connection window leaked")
		}
		s.Close()
	}
	s := e.mustDial(t, cl, firehose)
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(testWait))
	if _, err := io.ReadFull(s, make([]byte, burst)); err != nil {
		t.Fatalf("reading after many abandoned streams: %v", err)
	}
	if got := e.ln.accepts.Load(); got != 1 {
		t.Errorf("server accepted %d connections, want 1", got)
	}
}

// A destination that stops reading fills its socket: direct writes from
// the reader goroutine meet EAGAIN or write part, the stream buffers up to
// its window, the consumer takes over with blocking writes, and the
// sender is held back by flow control. Nothing may be lost or reordered.
func TestSlowDestinationBackpressure(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	got := make(chan []byte, 1)
	backend := e.backend(t, func(c *net.TCPConn) {
		defer c.Close()
		c.SetReadBuffer(64 << 10)
		<-release
		h := sha256.New()
		io.Copy(h, c)
		got <- h.Sum(nil)
	})
	cl := e.client(t)
	s := e.mustDial(t, cl, backend)
	defer s.Close()
	const size = 24 << 20
	sent := sha256.New()
	wrote := make(chan error, 1)
	go func() {
		buf := make([]byte, 50_000)
		for left := size; left > 0; left -= len(buf) {
			b := buf[:min(left, len(buf))]
			rand.Read(b)
			sent.Write(b)
			if _, err := s.Write(b); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- s.CloseWrite()
	}()
	// The sender must stall on flow control long before 24 MiB: wait
	// until its stream window is used up, then let the backend read.
	s.c.mu.Lock()
	for s.sendWin > 0 && !s.sendDone {
		s.c.sendWaits++
		s.c.sendCond.Wait()
		s.c.sendWaits--
	}
	s.c.mu.Unlock()
	close(release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	select {
	case sum := <-got:
		if !bytes.Equal(sum, sent.Sum(nil)) {
			t.Error("the destination received different bytes")
		}
	case <-time.After(testWait):
		t.Fatal("transfer did not finish")
	}
}

// After the client half-closed, the server side only reads the
// destination; if the tunnel then dies, the destination connection must
// be aborted rather than left waiting for the destination to speak.
func TestHalfClosedStreamAbortedWhenTunnelDies(t *testing.T) {
	e := newEnv(t)
	sawEOF := make(chan struct{})
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	quiet := e.backend(t, func(c *net.TCPConn) {
		defer c.Close()
		io.Copy(io.Discard, c)
		close(sawEOF)
		<-hold // never answers, never closes
	})
	cl := e.client(t)
	s := e.mustDial(t, cl, quiet)
	defer s.Close()
	io.WriteString(s, "no answer expected")
	s.CloseWrite()
	select {
	case <-sawEOF:
	case <-time.After(testWait):
		t.Fatal("destination did not see the half-close")
	}
	e.ln.accepted()[0].Conn.Close() // the tunnel dies
	end := e.nextEnd(t)
	var ce *ConnError
	if !errors.As(end.Err, &ce) {
		t.Errorf("server stream ended with %v, want a ConnError", end.Err)
	}
}
