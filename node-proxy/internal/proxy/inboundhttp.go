package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sys/unix"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// PeerIdentityHeader carries the caller's SPIFFE ID, as proven by mutual
// TLS, on HTTP requests the destination node proxy delivers to a pod. The
// proxy removes any value the caller sent, so an application may trust it
// (when it only accepts traffic through the mesh: STRICT).
const PeerIdentityHeader = "X-Weft-Peer-Identity"

// inboundHTTP delivers the tunnelled HTTP/1.1 of a pod's declared HTTP
// ports through a reverse proxy that sets PeerIdentityHeader. It is the
// server-side HTTP handling the L7 step builds on; other ports are spliced
// as bytes.
type inboundHTTP struct {
	srv *http.Server
	tr  *http.Transport
}

type connInfoKey struct{}

// inboundConn is the proxy's end of one tunnelled connection, carrying who
// sent it and where it goes.
type inboundConn struct {
	net.Conn
	peer spiffeid.ID
	dst  netip.AddrPort
}

func (pd *pod) newInboundHTTP() *inboundHTTP {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return pd.dialer.DialContext(ctx, "tcp", addr)
		},
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			c := pr.In.Context().Value(connInfoKey{}).(*inboundConn)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = c.dst.String()
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del(PeerIdentityHeader)
			pr.Out.Header.Set(PeerIdentityHeader, c.peer.String())
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			pd.p.log.Debug("inbound HTTP upstream failed", "pod", pd.key, "error", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return &inboundHTTP{
		tr: tr,
		srv: &http.Server{
			Handler:           rp,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       15 * time.Minute,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				return context.WithValue(ctx, connInfoKey{}, c)
			},
		},
	}
}

// connect returns the end of a local stream socket pair that the tunnel
// splices to; the HTTP server reads the other end.
func (h *inboundHTTP) connect(peer spiffeid.ID, dst netip.AddrPort) (net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ends := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "inbound-http")
		ends[i], err = net.FileConn(f)
		f.Close()
		if err != nil {
			if i == 1 {
				ends[0].Close()
			} else {
				unix.Close(fds[1])
			}
			return nil, fmt.Errorf("socketpair: %w", err)
		}
	}
	l := &oneConnListener{c: &inboundConn{Conn: ends[1], peer: peer, dst: dst}}
	go func() {
		_ = h.srv.Serve(l)
		if c := l.take(); c != nil {
			c.Close() // the server was closed before it accepted c
		}
	}()
	return ends[0], nil
}

func (h *inboundHTTP) close() {
	_ = h.srv.Close()
	h.tr.CloseIdleConnections()
}

// oneConnListener hands one connection to http.Server.Serve, then fails,
// so Serve returns while the connection is served on.
type oneConnListener struct {
	mu sync.Mutex
	c  *inboundConn
}

func (l *oneConnListener) take() *inboundConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.c
	l.c = nil
	return c
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if c := l.take(); c != nil {
		return c, nil
	}
	return nil, errOneConn
}

var errOneConn = errors.New("one connection only")

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.UnixAddr{Name: "inbound-http", Net: "unix"} }

// httpPort reports whether the workload declares port as HTTP/1.1.
func httpPort(w interface {
	GetPorts() []*xdsv1.WorkloadPort
}, port uint16) bool {
	for _, p := range w.GetPorts() {
		if p.GetPort() == uint32(port) {
			return p.GetProtocol() == xdsv1.Protocol_PROTOCOL_HTTP
		}
	}
	return false
}
