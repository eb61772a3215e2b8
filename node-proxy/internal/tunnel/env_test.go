package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

// testWait bounds every wait in these tests; nothing sleeps to
// synchronize.
const testWait = 20 * time.Second

// pki is a real CA (certstest) that issues real X.509-SVIDs.
type pki struct {
	ca     *certs.CA
	bundle *x509bundle.Bundle
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca, _ := certstest.NewCA(t, nil, certs.Options{})
	return &pki{ca: ca, bundle: ca.Bundle()}
}

func (p *pki) svid(t testing.TB, ns, sa string) *x509svid.SVID {
	t.Helper()
	id, err := certs.WorkloadID(certstest.TrustDomain, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return certstest.SVID(t, p.ca, id)
}

// trackingListener counts accepted connections and keeps them, so tests
// can assert how many TLS connections carried their streams and kill them.
type trackingListener struct {
	net.Listener
	accepts atomic.Int64
	mu      sync.Mutex // guards conns
	conns   []*trackedConn
}

type trackedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepts.Add(1)
	tc := &trackedConn{Conn: c, closed: make(chan struct{})}
	l.mu.Lock()
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) accepted() []*trackedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*trackedConn(nil), l.conns...)
}

// env is a tunnel server on loopback in front of an echo backend, with the
// identities of a client and a server workload.
type env struct {
	pki        *pki
	serverID   spiffeid.ID
	serverSVID *x509svid.SVID
	clientSVID *x509svid.SVID
	srv        *Server
	ln         *trackingListener
	addr       netip.AddrPort // the server
	echo       netip.AddrPort // an echo backend, local to the server
	reg        *prometheus.Registry
	ends       chan StreamEnd

	mu    sync.Mutex // guards local
	local map[netip.AddrPort]bool
}

func newEnv(t testing.TB, opts ...func(*ServerConfig)) *env {
	t.Helper()
	p := newPKI(t)
	e := &env{
		pki:        p,
		serverSVID: p.svid(t, "dst", "server"),
		clientSVID: p.svid(t, "src", "client"),
		reg:        prometheus.NewRegistry(),
		ends:       make(chan StreamEnd, 1024),
		local:      make(map[netip.AddrPort]bool),
	}
	e.serverID = e.serverSVID.ID
	e.echo = e.backend(t, echoHandler)
	cfg := ServerConfig{
		Certificate: func(ConnInfo) (*x509svid.SVID, error) { return e.serverSVID, nil },
		Bundle:      p.bundle,
		IsLocal: func(_ Peer, dst netip.AddrPort) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.local[dst]
		},
		Authorize:   func(context.Context, Peer, netip.AddrPort) error { return nil },
		OnStreamEnd: func(se StreamEnd) { e.ends <- se },
		Registerer:  e.reg,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.ln = &trackingListener{Listener: ln}
	e.addr = addrPort(ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(e.ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return e
}

// backend starts a TCP server on loopback, local to the tunnel server,
// running handle for each connection.
func (e *env) backend(t testing.TB, handle func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c.(*net.TCPConn))
		}
	}()
	ap := addrPort(ln.Addr())
	e.mu.Lock()
	e.local[ap] = true
	e.mu.Unlock()
	return ap
}

// echoHandler copies what it reads back, then half-closes.
func echoHandler(c *net.TCPConn) {
	defer c.Close()
	if _, err := io.Copy(c, c); err != nil {
		return
	}
	c.CloseWrite()
}

func (e *env) client(t testing.TB, opts ...func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Bundle: e.pki.bundle, Registerer: e.reg}
	for _, o := range opts {
		o(&cfg)
	}
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func (e *env) dial(cl *Client, authority netip.AddrPort, hdr Headers) (*Stream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	return cl.Dial(ctx, e.clientSVID, e.serverID, e.addr, authority, hdr)
}

func (e *env) mustDial(t testing.TB, cl *Client, authority netip.AddrPort) *Stream {
	t.Helper()
	s, err := e.dial(cl, authority, Headers{})
	if err != nil {
		t.Fatalf("Dial(%s): %v", authority, err)
	}
	return s
}

// nextEnd returns the next stream the server finished.
func (e *env) nextEnd(t testing.TB) StreamEnd {
	t.Helper()
	select {
	case se := <-e.ends:
		return se
	case <-time.After(testWait):
		t.Fatal("no stream ended on the server")
		return StreamEnd{}
	}
}

// waitClosed waits until c is closed.
func waitClosed(t testing.TB, c *trackedConn) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(testWait):
		t.Fatal("server connection not closed")
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
