package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
	"github.com/weftmesh/weft/node-proxy/internal/tunnel"
)

// inboundH2 serves a tunnel stream to a pod port declared HTTP/2 or gRPC
// at L7: each request is authorized with its method and path (a gRPC
// method is the path "/package.Service/Method"), gets X-Weft-Peer-Identity
// set to the proven caller, and is forwarded to the application over the
// pod's upstream h2c transport. It is a tunnel.StreamHandler; its
// net.Conn methods exist only to satisfy the tunnel's Dial.
type inboundH2 struct {
	pd        *pod
	peer      spiffeid.ID
	dst       netip.AddrPort
	authorize func(method, path string) error
	client    net.Addr // the calling pod's address
}

var _ tunnel.StreamHandler = (*inboundH2)(nil)

func (h *inboundH2) ServeStream(s *tunnel.Stream) (rx, tx int64, err error) {
	h.client = s.RemoteAddr()
	cc := &countingConn{Conn: s}
	srv := &http2.Server{}
	srv.ServeConn(cc, &http2.ServeConnOpts{Context: h.pd.ctx, Handler: h})
	return cc.rx.Load(), cc.tx.Load(), nil
}

func (h *inboundH2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pd := h.pd
	span, hdrs := pd.startServer(r.Header.Get, r.Method, r.URL.Path, h.peer, h.client, h.dst, true)
	if err := h.authorize(r.Method, r.URL.EscapedPath()); err != nil {
		endServer(span, http.StatusForbidden, true)
		if isGRPC(r.Header) {
			grpcTrailersOnly(w, 7, "RBAC: access denied") // PERMISSION_DENIED
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "RBAC: access denied\n")
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL = &url.URL{Scheme: "http", Host: h.dst.String(), Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	out.Host = r.Host
	for k := range out.Header {
		if strings.EqualFold(k, PeerIdentityHeader) {
			delete(out.Header, k)
		}
	}
	out.Header.Set(PeerIdentityHeader, h.peer.String())
	if hdrs != nil {
		for _, name := range telemetry.Propagated {
			out.Header.Del(name)
		}
		for _, hd := range hdrs {
			out.Header.Set(hd.Name, hd.Value)
		}
	}
	resp, err := pd.h2AppTransport().RoundTrip(out)
	if err != nil {
		endServer(span, http.StatusServiceUnavailable, false)
		pd.p.log.Debug("inbound HTTP/2 request failed", "pod", pd.key, "dst", h.dst, "error", err)
		if isGRPC(r.Header) {
			grpcTrailersOnly(w, 14, "upstream connect error") // UNAVAILABLE
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	for k := range resp.Trailer {
		if strings.EqualFold(k, PeerIdentityHeader) {
			delete(resp.Trailer, k)
		}
	}
	copyH2Response(w, resp, nil)
	endServer(span, resp.StatusCode, false)
}

// h2AppTransport returns the pod's h2c transport to its own
// applications.
func (pd *pod) h2AppTransport() *http2.Transport {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.h2app == nil {
		pd.h2app = &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return pd.dialer.DialContext(ctx, "tcp", addr)
			},
			ReadIdleTimeout: 30 * time.Second,
		}
	}
	return pd.h2app
}

func (h *inboundH2) Read([]byte) (int, error) { return 0, errors.New("inboundH2 is served, not read") }
func (h *inboundH2) Write([]byte) (int, error) {
	return 0, errors.New("inboundH2 is served, not written")
}
func (h *inboundH2) Close() error                     { return nil }
func (h *inboundH2) LocalAddr() net.Addr              { return net.TCPAddrFromAddrPort(h.dst) }
func (h *inboundH2) RemoteAddr() net.Addr             { return nil }
func (h *inboundH2) SetDeadline(time.Time) error      { return os.ErrNoDeadline }
func (h *inboundH2) SetReadDeadline(time.Time) error  { return os.ErrNoDeadline }
func (h *inboundH2) SetWriteDeadline(time.Time) error { return os.ErrNoDeadline }

// countingConn counts the bytes read and written through a connection.
type countingConn struct {
	net.Conn
	rx, tx atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.rx.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.tx.Add(int64(n))
	return n, err
}
