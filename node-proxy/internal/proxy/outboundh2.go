package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"

	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/node-proxy/internal/l7/fault"
	"github.com/weftmesh/weft/node-proxy/internal/l7/retry"
	"github.com/weftmesh/weft/node-proxy/internal/l7/route"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
)

// The client-side HTTP/2 (h2c, gRPC) path: golang.org/x/net/http2's
// server reads the pod's requests, and an http2.Transport per pod carries
// them to endpoints over tunnel streams (one HTTP/2 connection per
// endpoint, multiplexed). Routing, faults, retries, load balancing and
// outlier detection are those of the HTTP/1.1 path. It costs more than the
// HTTP/1.1 path (a goroutine per stream and net/http's allocations); gRPC
// and h2c traffic is the minority this path is for.

// recKey keys a request's *reqRecord in its context.
type recKey struct{}

// recOf returns r's record (a fresh one if it has none yet).
func recOf(r *http.Request) *reqRecord {
	if rec, ok := r.Context().Value(recKey{}).(*reqRecord); ok {
		return rec
	}
	return &reqRecord{start: time.Now()}
}

// traceOf returns r's trace, nil when tracing is off.
func traceOf(r *http.Request) *reqTrace {
	if rec, ok := r.Context().Value(recKey{}).(*reqRecord); ok {
		return rec.trace
	}
	return nil
}

// errDial marks an upstream connect failure, so that it is told apart from
// a reset.
type errDial struct{ err error }

func (e *errDial) Error() string { return "connect: " + e.err.Error() }
func (e *errDial) Unwrap() error { return e.err }

// h2Transport returns the pod's upstream HTTP/2 transport.
func (pd *pod) h2Transport() *http2.Transport {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.h2 == nil {
		pd.h2 = &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, _, addr string, _ *tls.Config) (net.Conn, error) {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, &errDial{err}
				}
				ep, ok := pd.p.mesh.Load().MeshedPod(ap.Addr())
				if !ok {
					ep = &meshcfg.Endpoint{Addr: ap}
				}
				c, err := pd.dialEndpoint(ctx, ep, ap)
				if err != nil {
					return nil, &errDial{err}
				}
				return c, nil
			},
			ReadIdleTimeout: 30 * time.Second,
		}
	}
	return pd.h2
}

// dialEndpoint opens an L7 upstream connection to ep for authority: a
// tunnel stream when the endpoint is meshed, plain TCP otherwise.
func (pd *pod) dialEndpoint(ctx context.Context, ep *meshcfg.Endpoint, authority netip.AddrPort) (net.Conn, error) {
	if !ep.Tunnel {
		return pd.dialer.DialContext(ctx, "tcp", authority.String())
	}
	svid, err := pd.svid(ctx)
	if err != nil {
		return nil, err
	}
	tdst := netip.AddrPortFrom(ep.Addr.Addr(), pd.p.cfg.Redirect.TunnelPort)
	s, err := pd.client.Dial(ctx, svid, ep.Identity, tdst, authority, tunnelHeaders)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// serveHTTP2 serves the HTTP/2 requests of one pod connection to the
// Service port at dst.
func (pd *pod) serveHTTP2(c net.Conn, dst netip.AddrPort) {
	pd.p.metrics.connections.WithLabelValues("outbound", resultHTTP, "").Inc()
	stop := context.AfterFunc(pd.ctx, func() { c.Close() })
	defer stop()
	srv := &http2.Server{}
	srv.ServeConn(c, &http2.ServeConnOpts{
		Context: pd.ctx,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pd.handleH2(w, r, dst) }),
	})
}

func isGRPC(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "application/grpc")
}

// h2Local answers locally; gRPC requests get a trailers-only answer with
// the gRPC status that matches status (Envoy's mapping).
func (pd *pod) h2Local(w http.ResponseWriter, r *http.Request, status int, reason string) {
	pd.p.metrics.requests.WithLabelValues("outbound", strconv.Itoa(status), reason).Inc()
	pd.finish(recOf(r), status, reason)
	w.Header().Set("X-Weft-Local-Reply", reason)
	if isGRPC(r.Header) {
		grpcTrailersOnly(w, grpcFromHTTP(status), strings.TrimSpace(localText(reason)))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, localText(reason))
}

func grpcTrailersOnly(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Grpc-Status", strconv.Itoa(code))
	w.Header().Set("Grpc-Message", msg)
	w.WriteHeader(http.StatusOK)
}

// grpcFromHTTP maps an HTTP status to a gRPC code as gRPC does.
func grpcFromHTTP(status int) int {
	switch status {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	default:
		return 2 // UNKNOWN
	}
}

func (pd *pod) handleH2(w http.ResponseWriter, r *http.Request, dst netip.AddrPort) {
	mc := pd.p.mesh.Load()
	sp, ok := mc.Service(dst)
	if !ok {
		pd.h2Local(w, r, http.StatusServiceUnavailable, replyNoService)
		return
	}
	rec := &reqRecord{start: time.Now(), sp: sp}
	rec.trace = pd.startRequest(r.Header.Get, r.Method, r.URL.Path, r.Host, true, sp)
	if isGRPC(r.Header) {
		rec.trace.grpcCall(r.URL.Path)
	}
	if pd.p.accessLog != nil {
		rec.method, rec.path, rec.authority = r.Method, r.URL.RequestURI(), r.Host
	}
	r = r.WithContext(context.WithValue(r.Context(), recKey{}, rec))
	rr := route.FromHTTP(r)
	rt, be, plan, cl, status, reason := resolve(mc, sp, pd.namespace, &rr, func() http.Header { return r.Header })
	if reason == replyRedirect {
		w.Header().Set("Location", rt.Location(&rr, "http"))
	}
	if status != 0 {
		pd.h2Local(w, r, status, reason)
		return
	}
	rec.cl = cl
	if rt != nil {
		traceOf(r).routed(rt.Name, cl.Name)
	} else {
		traceOf(r).routed("", cl.Name)
	}
	// The first fault draw (and its delay) before the slot and the
	// timeout, as on the HTTP/1.1 path; the request's context ends a delay
	// early when the client goes away.
	first, ok := pd.fault(r.Context(), plan, true)
	if !ok {
		pd.finish(rec, 499, "")
		return
	}
	st, view := pd.p.clusters.state(cl)
	if max := view.policy.MaxRequests; max > 0 {
		if st.inflight.Add(1) > int64(max) {
			st.inflight.Add(-1)
			pd.h2Local(w, r, http.StatusServiceUnavailable, replyOverflow)
			return
		}
		defer st.inflight.Add(-1)
	}
	pd.forwardH2(w, r, rt, be, plan, view, first)
}

func (pd *pod) forwardH2(w http.ResponseWriter, r *http.Request, rt *route.Route, be *route.Backend, plan *meshcfg.RoutePlan, view *clusterView, first fault.Decision) {
	start := time.Now()
	var deadline time.Time
	if rt != nil && rt.Timeout > 0 {
		deadline = start.Add(rt.Timeout)
	}
	pol := plan.Retry
	view.budget.Request()
	var body []byte
	replayable := true
	if r.Body != nil && r.Body != http.NoBody {
		limit := retry.MaxReplayBody
		if pol.Attempts == 0 {
			limit = 0
		}
		var err error
		if body, replayable, err = retry.ReplayableBody(r.Body, limit); err != nil {
			pd.h2Local(w, r, http.StatusBadRequest, replyBadRequest)
			return
		}
	}
	tr := pd.h2Transport()
	var tried [4]int
	ntried := 0
	last := resetBeforeResponse
	for attempt := 0; ; attempt++ {
		// Aborts are drawn per attempt, as on the HTTP/1.1 path.
		d := first
		if attempt > 0 {
			d, _ = pd.fault(r.Context(), plan, false)
		}
		if d.Delay > 0 || d.Abort {
			kind := map[bool]string{true: "abort", false: "delay"}[d.Abort]
			recOf(r).fault = kind
			traceOf(r).fault(kind)
			if d.Abort {
				status, gs := d.HTTPStatus, (*int)(nil)
				if grpc := isGRPC(r.Header); grpc {
					code := grpcFromHTTP(d.HTTPStatus)
					if d.HasGRPC {
						code = d.GRPCStatus
					}
					status, gs = http.StatusOK, &code
				}
				if replayable && attempt < pol.Attempts && pol.Retriable(status, gs, false, false) &&
					pd.retryAllowed(view, deadline, attempt+1, pol) {
					continue
				}
				pd.h2FaultReply(w, r, d)
				return
			}
		}
		i, ok := pickEndpoint(view, tried[:ntried])
		if !ok {
			if ntried == 0 {
				pd.h2Local(w, r, http.StatusServiceUnavailable, replyNoHealthy)
			} else {
				pd.h2Fail(w, r, last)
			}
			return
		}
		if ntried < len(tried) {
			tried[ntried] = i
			ntried++
		}
		ep := view.src.Endpoints[i]
		tryStart := time.Now()
		tryDeadline := attemptDeadline(tryStart, deadline, pol.PerTryTimeout)
		ctx, cancel := r.Context(), context.CancelFunc(func() {})
		if !tryDeadline.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, tryDeadline)
		}
		out := r.Clone(ctx)
		out.RequestURI = ""
		out.URL = &url.URL{Scheme: "http", Host: ep.Addr.String(), Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		out.Host = r.Host
		if p, ok := rt.RewritePath(&route.Request{Path: r.URL.EscapedPath()}); ok {
			out.URL.RawPath = p
			if dec, err := url.PathUnescape(p); err == nil {
				out.URL.Path = dec
			}
		}
		if rt != nil && rt.Rewrite != nil && rt.Rewrite.Host != "" {
			out.Host = rt.Rewrite.Host
		}
		switch {
		case replayable && body != nil:
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		case !replayable:
			out.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		}
		if mods := rt.RequestMods(be); mods != nil {
			mods.Apply(out.Header)
		}
		rec := recOf(r)
		rec.ep, rec.attempts = ep, attempt+1
		span, hdrs := traceOf(r).attempt(attempt, ep)
		if hdrs != nil {
			for _, name := range telemetry.Propagated {
				out.Header.Del(name)
			}
			for _, h := range hdrs {
				out.Header.Set(h.Name, h.Value)
			}
		}
		resp, err := tr.RoundTrip(out)
		if err != nil {
			cancel()
			view.picker.Done(i, -1)
			var de *errDial
			switch {
			case ctx.Err() != nil && r.Context().Err() == nil:
				last = timedOut
			case errors.As(err, &de):
				last = connectFailed
			default:
				last = resetBeforeResponse
			}
			if view.outlier != nil {
				view.outlier.Report(ep.Addr.String(), 503, true)
			}
			endAttempt(span, 0, last)
			if replayable && attempt < pol.Attempts && pol.Retriable(0, nil, last != connectFailed, last == connectFailed) &&
				pd.retryAllowed(view, deadline, attempt+1, pol) {
				continue
			}
			pd.h2Fail(w, r, last)
			return
		}
		view.picker.Done(i, time.Since(tryStart))
		endAttempt(span, resp.StatusCode, gotResponse)
		var gs *int
		if v := resp.Header.Get("Grpc-Status"); v != "" {
			if n, err := strconv.Atoi(v); err == nil {
				gs = &n
			}
		}
		if view.outlier != nil {
			view.outlier.Report(ep.Addr.String(), resp.StatusCode, false)
		}
		if replayable && attempt < pol.Attempts && pol.Retriable(resp.StatusCode, gs, false, false) &&
			pd.retryAllowed(view, deadline, attempt+1, pol) {
			resp.Body.Close()
			cancel()
			continue
		}
		pd.p.metrics.proxied(0, resp.StatusCode)
		copyH2Response(w, resp, rt.ResponseMods(be))
		cancel()
		if gs := resp.Trailer.Get("Grpc-Status"); gs != "" {
			traceOf(r).grpcStatus(gs)
		} else {
			traceOf(r).grpcStatus(resp.Header.Get("Grpc-Status"))
		}
		pd.finish(recOf(r), resp.StatusCode, "")
		return
	}
}

// copyBufs are copyH2Response's buffers.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyH2Response writes resp to w: headers (with the route's changes),
// the body flushed as it arrives (gRPC streams), then trailers.
func copyH2Response(w http.ResponseWriter, resp *http.Response, mods *route.HeaderMods) {
	defer resp.Body.Close()
	if mods != nil {
		mods.Apply(resp.Header)
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	fl, _ := w.(http.Flusher)
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				// The upstream stream broke mid-body: reset the client's.
				panic(http.ErrAbortHandler)
			}
			break
		}
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
}

// h2Fail answers a request that got no response.
func (pd *pod) h2Fail(w http.ResponseWriter, r *http.Request, res outcome) {
	switch res {
	case timedOut:
		pd.h2Local(w, r, http.StatusGatewayTimeout, replyTimeout)
	case connectFailed:
		pd.h2Local(w, r, http.StatusServiceUnavailable, replyConnectFailed)
	case denied:
		pd.h2Local(w, r, http.StatusForbidden, replyDenied)
	default:
		pd.h2Local(w, r, http.StatusServiceUnavailable, replyReset)
	}
}

// h2FaultReply answers with an injected abort: its HTTP status, or for
// gRPC its grpc-status (trailers-only).
func (pd *pod) h2FaultReply(w http.ResponseWriter, r *http.Request, d fault.Decision) {
	rec := recOf(r)
	pd.p.metrics.requests.WithLabelValues("outbound", strconv.Itoa(d.HTTPStatus), replyFault).Inc()
	pd.finish(rec, d.HTTPStatus, replyFault)
	w.Header().Set("X-Weft-Local-Reply", replyFault)
	grpc := isGRPC(r.Header)
	switch {
	case grpc && d.HasGRPC:
		grpcTrailersOnly(w, d.GRPCStatus, "fault filter abort")
	case grpc:
		grpcTrailersOnly(w, grpcFromHTTP(d.HTTPStatus), "fault filter abort")
	default:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(d.HTTPStatus)
		_, _ = io.WriteString(w, localText(replyFault))
	}
}
