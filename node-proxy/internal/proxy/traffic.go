package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/node-proxy/internal/l7/sniff"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
	"github.com/weftmesh/weft/node-proxy/internal/tunnel"
	"github.com/weftmesh/weft/node-proxy/netns"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// Outbound outcomes, the "result" label of weft_proxy_connections_total.
const (
	resultTunnel      = "tunnel"      // carried through HBONE
	resultDirect      = "direct"      // plain TCP to an endpoint outside the mesh
	resultPassthrough = "passthrough" // plain TCP to a destination outside the mesh
	resultRefused     = "refused"     // closed; the reason label says why
	resultPlaintext   = "plaintext"   // inbound plaintext accepted (PERMISSIVE)
	resultHTTP        = "http"        // handled at L7 (HTTP/1.1 or HTTP/2)
)

// dialTimeout bounds opening the upstream of one connection.
const dialTimeout = 10 * time.Second

// originalDst reads where a captured connection was going; on failure it
// counts and resets the connection.
func (pd *pod) originalDst(c *net.TCPConn, direction string) (netip.AddrPort, bool) {
	dst, err := netns.OriginalDst(c)
	if err != nil {
		pd.p.metrics.refuse(direction, "no_original_destination")
		reset(c)
		return netip.AddrPort{}, false
	}
	return dst, true
}

// outbound carries one connection the pod opened.
func (pd *pod) outbound(c *net.TCPConn) {
	p := pd.p
	dst, ok := pd.originalDst(c, "outbound")
	if !ok {
		return
	}
	mc, w, ok := pd.workload()
	if !ok {
		p.metrics.refuse("outbound", "unknown_workload")
		p.log.Debug("outbound refused: the pod is not described by the configuration", "pod", pd.key, "dst", dst)
		reset(c)
		return
	}
	start := time.Now()
	var in net.Conn = c
	if sp, ok := mc.Service(dst); ok {
		switch l7, conn := pd.detect(c, sp); l7 {
		case sniff.HTTP1:
			pd.serveHTTP1(conn, dst)
			return
		case sniff.HTTP2:
			pd.serveHTTP2(conn, dst)
			return
		default:
			in = conn
		}
	}
	ct := pd.startConn(dst, start)
	ctx, cancel := context.WithTimeout(pd.ctx, dialTimeout)
	up, result, reason, err := pd.dialOutbound(ctx, mc, w, dst, ct.headers())
	cancel()
	if err != nil {
		ct.end(resultRefused, reason, 0, 0)
		p.metrics.refuse("outbound", reason)
		p.log.Debug("outbound refused", "pod", pd.key, "dst", dst, "reason", reason, "error", err)
		reset(c)
		return
	}
	p.metrics.connections.WithLabelValues("outbound", result, "").Inc()
	defer context.AfterFunc(pd.ctx, func() { reset(c); up.Close() })()
	up2, down := pipe(in, up)
	p.metrics.addBytes("outbound", up2, down)
	ct.end(result, "", up2, down)
}

// dialOutbound opens the upstream for dst: a tunnel stream to a meshed
// endpoint, a plain connection otherwise. reason is set on failure.
func (pd *pod) dialOutbound(ctx context.Context, mc *meshcfg.Config, w *meshcfg.Workload, dst netip.AddrPort, hdr tunnel.Headers) (up net.Conn, result, reason string, err error) {
	var ep *meshcfg.Endpoint
	authority := dst
	if sp, ok := mc.Service(dst); ok {
		cl, ok := mc.Cluster(sp.Cluster)
		if !ok {
			return nil, "", "no_cluster", fmt.Errorf("service %s port %d: cluster %s not received", sp.Service, sp.Port, sp.Cluster)
		}
		if ep, ok = cl.Pick(); !ok {
			return nil, "", "no_endpoints", fmt.Errorf("service %s port %d has no endpoints", sp.Service, sp.Port)
		}
		authority = ep.Addr
	} else if pe, ok := mc.MeshedPod(dst.Addr()); ok {
		ep = pe // same pod IP; the authority keeps the original port
	}
	switch {
	case ep != nil && ep.Tunnel:
		svid, err := pd.svid(ctx)
		if err != nil {
			return nil, "", "no_certificate", err
		}
		tdst := netip.AddrPortFrom(ep.Addr.Addr(), pd.p.cfg.Redirect.TunnelPort)
		s, err := pd.client.Dial(ctx, svid, ep.Identity, tdst, authority, hdr)
		if err != nil {
			return nil, "", tunnelReason(err), err
		}
		return s, resultTunnel, "", nil
	case ep != nil:
		c, err := pd.dialer.DialContext(ctx, "tcp", ep.Addr.String())
		if err != nil {
			return nil, "", "connect_failed", err
		}
		return c, resultDirect, "", nil
	case !pd.p.cfg.OutboundPassthrough:
		return nil, "", "passthrough_disabled", fmt.Errorf("%s is outside the mesh and passthrough is off", dst)
	default:
		c, err := pd.dialer.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			return nil, "", "connect_failed", err
		}
		return c, resultPassthrough, "", nil
	}
}

// tunnelReason names a tunnel dial failure for metrics.
func tunnelReason(err error) string {
	var se *tunnel.StatusError
	var ie *tunnel.IdentityError
	switch {
	case errors.As(err, &ie):
		return "wrong_identity"
	case errors.As(err, &se):
		code, _ := tunnel.StatusCode(err)
		switch code {
		case 401, 403:
			return "denied"
		case 503:
			return "upstream_connect_failed"
		default:
			return "tunnel_refused"
		}
	default:
		return "tunnel_failed"
	}
}

// inbound handles plaintext that arrived at the pod from outside the mesh.
func (pd *pod) inbound(c *net.TCPConn) {
	p := pd.p
	dst, ok := pd.originalDst(c, "inbound")
	if !ok {
		return
	}
	_, w, ok := pd.workload()
	switch {
	case !ok:
		p.metrics.refuse("inbound", "unknown_workload")
		reset(c)
		return
	case w.GetInboundMode() != xdsv1.InboundMode_INBOUND_MODE_PERMISSIVE:
		p.metrics.refuse("inbound", "plaintext_strict")
		p.log.Debug("inbound plaintext refused (STRICT)", "pod", pd.key, "src", c.RemoteAddr(), "dst", dst)
		reset(c)
		return
	}
	if err := w.Authorize(meshcfg.Request{Port: uint32(dst.Port())}); err != nil {
		p.metrics.denials.WithLabelValues("plaintext").Inc()
		p.metrics.refuse("inbound", "denied")
		p.log.Debug("inbound plaintext denied", "pod", pd.key, "dst", dst, "error", err)
		reset(c)
		return
	}
	ctx, cancel := context.WithTimeout(pd.ctx, dialTimeout)
	up, err := pd.dialer.DialContext(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		p.metrics.refuse("inbound", "connect_failed")
		reset(c)
		return
	}
	p.metrics.connections.WithLabelValues("inbound", resultPlaintext, "").Inc()
	defer context.AfterFunc(pd.ctx, func() { reset(c); up.Close() })()
	up2, down := pipe(c, up)
	p.metrics.addBytes("inbound", up2, down)
}

// serverCertificate is the pod's SVID, presented on its 15008 listener.
func (pd *pod) serverCertificate(tunnel.ConnInfo) (*x509svid.SVID, error) {
	return pd.svid(pd.ctx)
}

// isLocal accepts an authority that is one of this pod's addresses.
func (pd *pod) isLocal(_ tunnel.Peer, dst netip.AddrPort) bool {
	_, w, ok := pd.workload()
	return ok && w.HasAddr(dst.Addr()) && dst.Port() != pd.p.cfg.Redirect.TunnelPort
}

// authorizeTunnel applies the pod's AuthorizationPolicies to a tunnel.
func (pd *pod) authorizeTunnel(_ context.Context, peer tunnel.Peer, dst netip.AddrPort) error {
	_, w, ok := pd.workload()
	if !ok {
		pd.p.metrics.denials.WithLabelValues("unknown_workload").Inc()
		return fmt.Errorf("%w: pod %s is not described by the configuration", tunnel.ErrDenied, pd.key)
	}
	if _, _, ok := certs.WorkloadFromID(peer.ID); !ok || peer.ID.TrustDomain() != pd.p.cfg.TrustDomain {
		// A node or control-plane certificate (or another trust domain)
		// is not a workload: tunnels carry workloads' connections only.
		pd.p.metrics.denials.WithLabelValues("not_a_workload").Inc()
		return fmt.Errorf("%w: %s is not a workload identity of %s", tunnel.ErrDenied, peer.ID, pd.p.cfg.TrustDomain)
	}
	switch w.PortProtocol(dst.Port()) {
	case xdsv1.Protocol_PROTOCOL_HTTP, xdsv1.Protocol_PROTOCOL_HTTP2, xdsv1.Protocol_PROTOCOL_GRPC:
		// Authorized per request, with the method and path
		// (authorizeRequest), so that rules naming them apply.
		return nil
	}
	if err := w.Authorize(meshcfg.Request{Peer: peer.ID, Port: uint32(dst.Port())}); err != nil {
		pd.p.metrics.denials.WithLabelValues("policy").Inc()
		return fmt.Errorf("%w: %v", tunnel.ErrDenied, err)
	}
	return nil
}

// authorizeRequest returns the per-request check of HTTP/1.1 requests
// from peer to the pod's port: the pod's AuthorizationPolicies of the
// current configuration, with the request's method and path.
func (pd *pod) authorizeRequest(peer spiffeid.ID, port uint32) func(method, path string) error {
	return func(method, path string) error {
		mc := pd.p.mesh.Load()
		var w *meshcfg.Workload
		ok := false
		if mc != nil {
			w, ok = mc.Workload(pd.key)
		}
		if !ok || w.GetUid() != pd.ref.UID {
			pd.p.metrics.denials.WithLabelValues("unknown_workload").Inc()
			return fmt.Errorf("pod %s is not described by the configuration", pd.key)
		}
		if err := w.Authorize(meshcfg.Request{Peer: peer, Port: port, HTTP: true, Method: method, Path: normalizePath(path)}); err != nil {
			pd.p.metrics.denials.WithLabelValues("policy").Inc()
			pd.p.metrics.requests.WithLabelValues("inbound", "403", replyDenied).Inc()
			return err
		}
		return nil
	}
}

// streamEnded records an inbound tunnel stream.
func (pd *pod) streamEnded(e tunnel.StreamEnd) {
	p := pd.p
	pd.serverConnSpan(e)
	if e.Status == 200 {
		p.metrics.connections.WithLabelValues("inbound", resultTunnel, "").Inc()
		p.metrics.addBytes("inbound", e.Rx, e.Tx)
	} else {
		p.metrics.refuse("inbound", "tunnel_"+e.Reason)
	}
	p.log.Debug("inbound tunnel", "pod", pd.key, "peer", e.Peer.ID.String(), "src", e.Peer.Remote, "authority", e.Authority,
		"status", e.Status, "reason", e.Reason, "rx", e.Rx, "tx", e.Tx, "duration", e.Duration, "error", e.Err)
}

// pipe copies between a and b until both directions end, half-closing
// each side when the other's direction ends, then closes both. It returns
// the bytes copied from a to b and from b to a.
func pipe(a, b net.Conn) (aToB, bToA int64) {
	if s, ok := b.(*tunnel.Stream); ok {
		fromStream, toStream, _ := tunnel.Splice(s, a)
		return toStream, fromStream
	}
	done := make(chan int64, 1)
	go func() {
		n, err := io.Copy(a, b)
		if err != nil {
			closeConn(a)
			closeConn(b)
		} else {
			closeWrite(a)
		}
		done <- n
	}()
	n, err := io.Copy(b, a)
	if err != nil {
		closeConn(b)
		closeConn(a)
	} else {
		closeWrite(b)
	}
	bToA = <-done
	a.Close()
	b.Close()
	return n, bToA
}

// detect says how to carry a connection to Service port sp: by its
// declared protocol, or, when none is declared, by its first bytes (at
// most sniff.DefaultTimeout: a server-first protocol waits that long,
// then is carried as TCP). The returned Conn replays what was read.
func (pd *pod) detect(c *net.TCPConn, sp *meshcfg.ServicePort) (sniff.Protocol, net.Conn) {
	switch sp.Protocol {
	case xdsv1.Protocol_PROTOCOL_HTTP:
		return sniff.HTTP1, c
	case xdsv1.Protocol_PROTOCOL_HTTP2, xdsv1.Protocol_PROTOCOL_GRPC:
		return sniff.HTTP2, c
	case xdsv1.Protocol_PROTOCOL_TCP:
		return sniff.Unknown, c
	}
	proto, sc, err := sniff.Sniff(c, sniff.DefaultTimeout, 0)
	if err != nil {
		return sniff.Unknown, c
	}
	return proto, sc
}

func closeConn(c net.Conn) {
	if sc, ok := c.(*sniff.Conn); ok {
		c = sc.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		reset(tc)
		return
	}
	c.Close()
}

// reset closes c with a TCP RST, so the application sees a refused
// connection rather than an orderly end.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// normalizePath is the path authorization sees: percent-encoded unreserved
// characters decoded, dot segments resolved and repeated slashes merged
// (RFC 3986 normalization, Istio's default), so that "/./admin",
// "//admin" and "/%61dmin" are all "/admin" to a rule. The request itself
// is forwarded unchanged.
func normalizePath(p string) string {
	if p == "" || p[0] != '/' {
		return p
	}
	clean := true
	for i := 0; i < len(p); i++ {
		if p[i] == '%' || p[i] == '.' && (i == 0 || p[i-1] == '/') || p[i] == '/' && i > 0 && p[i-1] == '/' {
			clean = false
			break
		}
	}
	if clean {
		return p
	}
	var b []byte
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '%' && i+2 < len(p) {
			if v, ok := unhex(p[i+1], p[i+2]); ok && isUnreserved(v) {
				b = append(b, v)
				i += 2
				continue
			}
		}
		b = append(b, p[i])
	}
	out := path.Clean(string(b))
	if strings.HasSuffix(string(b), "/") && out != "/" {
		out += "/"
	}
	return out
}

func unhex(a, b byte) (byte, bool) {
	h := func(c byte) (byte, bool) {
		switch {
		case '0' <= c && c <= '9':
			return c - '0', true
		case 'a' <= c && c <= 'f':
			return c - 'a' + 10, true
		case 'A' <= c && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	x, ok1 := h(a)
	y, ok2 := h(b)
	return x<<4 | y, ok1 && ok2
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
