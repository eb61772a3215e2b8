package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/node-proxy/internal/l7/fault"
	"github.com/weftmesh/weft/node-proxy/internal/l7/h1"
	"github.com/weftmesh/weft/node-proxy/internal/l7/retry"
	"github.com/weftmesh/weft/node-proxy/internal/l7/route"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
	"github.com/weftmesh/weft/node-proxy/internal/tunnel"
)

// The client-side HTTP/1.1 path. One goroutine per downstream connection
// reads each request head in place, matches the Service port's routes,
// picks a backend and an endpoint, and writes the request into a
// kept-alive upstream connection (a tunnel stream to a meshed endpoint);
// then it reads the response head, decides whether to retry, and copies
// the response back. No goroutine per request, no net/http.

// bufSize is the read buffer of each side of an L7 connection.
const bufSize = 32 << 10

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

// tunnelHeaders are the extra CONNECT headers of an L7 upstream stream.
var tunnelHeaders = tunnel.Headers{}

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// Local reply reasons (the x-weft-local-reply header and the "reason" of
// weft_proxy_requests_total).
const (
	replyNoRoute        = "route_not_found"
	replyInvalidBackend = "invalid_backend"
	replyNoHealthy      = "no_healthy_upstream"
	replyConnectFailed  = "upstream_connect_failed"
	replyReset          = "upstream_reset"
	replyTimeout        = "upstream_timeout"
	replyOverflow       = "overflow"
	replyFault          = "fault_abort"
	replyDenied         = "denied"
	replyBadRequest     = "bad_request"
	replyNoService      = "service_gone"
	replyRedirect       = "redirect"
)

// h1client is the state of one downstream HTTP/1.1 connection.
type h1client struct {
	// location is the Location header of the next local reply (a
	// redirect); local clears it.
	location string
	be       *route.Backend // the backend the current request was routed to, if a route chose one
	pd       *pod
	c        net.Conn
	br       *bufio.Reader
	dst      netip.AddrPort
	req      h1.Head
	resp     h1.Head
	head     []byte // the request head sent upstream
	out      []byte // scratch for response heads and local replies
	body     []byte // a buffered request body
	hdr      http.Header

	rec   reqRecord // the request being served: metrics, access log, span
	thead []byte    // head plus propagation headers, per attempt
}

// serveHTTP1 carries HTTP/1.1 requests for the Service port at dst until
// the client or an error ends the connection.
func (pd *pod) serveHTTP1(c net.Conn, dst netip.AddrPort) {
	hc := &h1client{pd: pd, c: c, dst: dst, br: getReader(c)}
	defer func() {
		putReader(hc.br)
		c.Close()
	}()
	stop := context.AfterFunc(pd.ctx, func() { c.Close() })
	defer stop()
	pd.p.metrics.connections.WithLabelValues("outbound", resultHTTP, "").Inc()
	for {
		err := hc.req.ReadRequest(hc.br)
		hc.rec = reqRecord{start: time.Now()}
		if err != nil {
			if errors.Is(err, h1.ErrMalformed) {
				hc.local(http.StatusBadRequest, replyBadRequest, true)
			}
			return
		}
		if !hc.handle() {
			return
		}
	}
}

// bstr views b as a string without copying; the string must not outlive
// the next read into b's buffer.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// handle serves the request in hc.req and reports whether the connection
// may carry another.
func (hc *h1client) handle() bool {
	p := hc.pd.p
	mc := p.mesh.Load()
	sp, ok := mc.Service(hc.dst)
	if !ok {
		return hc.discardAndReply(http.StatusServiceUnavailable, replyNoService)
	}
	if v, ok := hc.req.Get("Expect"); ok && bytes.EqualFold(v, []byte("100-continue")) {
		// Answer it here (as Envoy does): the body is then sent at once
		// and may be buffered for retries.
		if _, err := hc.c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n")); err != nil {
			return false
		}
	}
	path, query := hc.req.Path()
	host, _ := hc.req.Get("Host")
	hc.rec.sp = sp
	hc.rec.trace = hc.pd.startRequest(hc.lookup, string(hc.req.Method), string(path), string(host), false, sp)
	if p.accessLog != nil {
		hc.rec.method, hc.rec.path, hc.rec.authority = string(hc.req.Method), string(hc.req.Target), string(host)
	}
	rr := route.Request{Method: bstr(hc.req.Method), Path: bstr(path), RawQuery: bstr(query), Host: bstr(host)}
	rt, be, plan, cl, status, reason := resolve(mc, sp, hc.pd.namespace, &rr, hc.header)
	hc.be = be
	if status != 0 {
		if reason == replyRedirect {
			hc.location = rt.Location(&rr, "http")
		}
		return hc.discardAndReply(status, reason)
	}
	hc.rec.cl = cl
	if rt != nil {
		hc.rec.trace.routed(rt.Name, cl.Name)
	} else {
		hc.rec.trace.routed("", cl.Name)
	}
	// The first attempt's fault draw, with its delay, happens before the
	// request holds a slot or its timeout starts (as Envoy's fault filter
	// runs before the router).
	first, ok := hc.pd.fault(hc.pd.ctx, plan, true)
	if !ok {
		hc.pd.finish(&hc.rec, 499, "")
		return false
	}
	st, view := p.clusters.state(cl)
	if max := view.policy.MaxRequests; max > 0 {
		if st.inflight.Add(1) > int64(max) {
			st.inflight.Add(-1)
			return hc.discardAndReply(http.StatusServiceUnavailable, replyOverflow)
		}
		defer st.inflight.Add(-1)
	}
	return hc.forward(rt, plan, st, view, first)
}

// resolve finds what serves a request from a client in namespace ns to
// Service port sp: the matching route (consumer routes of ns first) and
// its policy, and the backend cluster chosen by weight. A non-zero status
// is the local reply instead. header fills rr.Header when a route matches
// on headers.
func resolve(mc *meshcfg.Config, sp *meshcfg.ServicePort, ns string, rr *route.Request, header func() http.Header) (rt *route.Route, be *route.Backend, plan *meshcfg.RoutePlan, cl *meshcfg.Cluster, status int, reason string) {
	plan = meshcfg.NoPlan
	cluster := sp.Cluster
	if rs := sp.RoutesFor(ns); rs != nil {
		if rs.NeedsHeaders && rr.Header == nil {
			rr.Header = header()
		}
		var ok bool
		if rt, ok = rs.Table.Match(rr); !ok {
			return nil, nil, nil, nil, http.StatusNotFound, replyNoRoute
		}
		if rt.DirectStatus != 0 {
			return nil, nil, nil, nil, rt.DirectStatus, replyInvalidBackend
		}
		if rt.Redirect != nil {
			return rt, nil, nil, nil, rt.Redirect.Status, replyRedirect
		}
		plan = rs.Plan(rt)
		if be = rt.PickBackend(rand.Uint64()); be == nil {
			return nil, nil, nil, nil, http.StatusInternalServerError, replyInvalidBackend
		}
		cluster = be.Cluster
	}
	cl, ok := mc.Cluster(cluster)
	if !ok || cl.Invalid != "" {
		return nil, nil, nil, nil, http.StatusInternalServerError, replyInvalidBackend
	}
	return rt, be, plan, cl, 0, ""
}

// lookup returns a request header's first value (for propagation).
func (hc *h1client) lookup(name string) string {
	v, _ := hc.req.Get(name)
	return string(v)
}

// header builds the request's http.Header, for routes that match headers.
func (hc *h1client) header() http.Header {
	if hc.hdr == nil {
		hc.hdr = http.Header{}
	}
	clear(hc.hdr)
	for _, f := range hc.req.Fields {
		k := http.CanonicalHeaderKey(string(f.Name))
		if k == "Host" {
			continue
		}
		hc.hdr[k] = append(hc.hdr[k], string(f.Value))
	}
	return hc.hdr
}

// attempt outcomes.
type outcome int

const (
	gotResponse outcome = iota
	connectFailed
	resetBeforeResponse
	timedOut
	denied
)

// forward sends the request upstream with retries and copies the response
// back. It reports whether the downstream connection may continue.
func (hc *h1client) forward(rt *route.Route, plan *meshcfg.RoutePlan, st *clusterState, view *clusterView, first fault.Decision) bool {
	p := hc.pd.p
	start := time.Now()
	var deadline time.Time
	if rt != nil && rt.Timeout > 0 {
		deadline = start.Add(rt.Timeout)
	}
	pol := plan.Retry
	view.budget.Request()

	// The request body: buffered when it fits, so that it can be sent
	// again; otherwise streamed once, without retries.
	bodyFraming := hc.req.RequestBody()
	replayable := true
	hc.body = hc.body[:0]
	if !bodyFraming.Empty() {
		var err error
		limit := retry.MaxReplayBody
		if pol.Attempts == 0 || hc.req.Upgrade {
			limit = 0
		}
		hc.body, replayable, err = bodyFraming.Buffer(hc.body, hc.br, limit)
		if err != nil {
			hc.pd.finish(&hc.rec, 499, "")
			return false
		}
	}
	upgrade := hc.req.Upgrade || bytes.Equal(hc.req.Method, []byte("CONNECT"))
	head := hc.requestHead(rt)

	var tried [4]int
	ntried := 0
	var last outcome
	for attempt := 0; ; attempt++ {
		// Aborts are drawn per attempt: an injected abort is an attempt
		// that failed, retried as an upstream failure would be. The delay
		// was drawn once, before the request's timeout started.
		d := first
		if attempt > 0 {
			d, _ = hc.pd.fault(hc.pd.ctx, plan, false)
		}
		if d.Delay > 0 || d.Abort {
			kind := map[bool]string{true: "abort", false: "delay"}[d.Abort]
			hc.rec.fault = kind
			hc.rec.trace.fault(kind)
			if d.Abort {
				if !upgrade && replayable && attempt < pol.Attempts && pol.Retriable(d.HTTPStatus, nil, false, false) &&
					hc.pd.retryAllowed(view, deadline, attempt+1, pol) {
					continue
				}
				// A body not buffered whole is still (partly) unread:
				// close the connection rather than read past it.
				return hc.local(d.HTTPStatus, replyFault, !replayable)
			}
		}
		i, ok := pickEndpoint(view, tried[:ntried])
		if !ok {
			if ntried == 0 {
				return hc.discardAndReply(http.StatusServiceUnavailable, replyNoHealthy)
			}
			return hc.failReply(last)
		}
		if ntried < len(tried) {
			tried[ntried] = i
			ntried++
		}
		ep := view.src.Endpoints[i]
		tryStart := time.Now()
		tryDeadline := attemptDeadline(tryStart, deadline, pol.PerTryTimeout)
		hc.rec.ep, hc.rec.attempts = ep, attempt+1
		span, hdrs := hc.rec.trace.attempt(attempt, ep)
		u, res := hc.try(st, view, ep, hc.withTrace(head, hdrs), bodyFraming, replayable, tryDeadline)
		last = res
		if res == gotResponse {
			endAttempt(span, hc.resp.Status, res)
		} else {
			endAttempt(span, 0, res)
		}
		switch res {
		case gotResponse:
			view.picker.Done(i, time.Since(tryStart))
			status := hc.resp.Status
			if view.outlier != nil {
				view.outlier.Report(ep.Addr.String(), status, false)
			}
			if !upgrade && replayable && attempt < pol.Attempts && pol.Retriable(status, nil, false, false) &&
				hc.pd.retryAllowed(view, deadline, attempt+1, pol) {
				hc.dropResponse(u)
				continue
			}
			p.metrics.proxied(0, status)
			keep := hc.respond(u, rt, deadline, upgrade)
			hc.pd.finish(&hc.rec, status, "")
			return keep
		case denied:
			view.picker.Done(i, -1)
			return hc.failReply(res)
		default:
			view.picker.Done(i, -1)
			if view.outlier != nil {
				view.outlier.Report(ep.Addr.String(), 503, true)
			}
			if !replayable || upgrade || attempt >= pol.Attempts || !pol.Retriable(0, nil, res != connectFailed, res == connectFailed) ||
				!hc.pd.retryAllowed(view, deadline, attempt+1, pol) {
				// A body streamed upstream was partly consumed: the
				// connection cannot carry another request.
				ok := hc.failReply(res)
				return ok && replayable
			}
		}
	}
}

// fault draws the route's injected faults and, with delay, waits out a
// delay (until ctx ends: ok false); without, a drawn delay is dropped (a
// retry draws only the abort).
func (pd *pod) fault(ctx context.Context, plan *meshcfg.RoutePlan, delay bool) (d fault.Decision, ok bool) {
	if plan.Fault == nil {
		return d, true
	}
	d = plan.Fault.Decide(rand.Uint64)
	if !delay {
		d.Delay = 0
	}
	if d.Delay > 0 {
		pd.p.metrics.faults.WithLabelValues("delay").Inc()
		if sleepCtx(ctx, d.Delay) != nil {
			return d, false
		}
	}
	if d.Abort {
		pd.p.metrics.faults.WithLabelValues("abort").Inc()
	}
	return d, true
}

// attemptDeadline is when an attempt started at start must end: the
// route's deadline or the per-try timeout, whichever comes first (zero:
// none).
func attemptDeadline(start, deadline time.Time, perTry time.Duration) time.Time {
	if perTry > 0 {
		if d := start.Add(perTry); deadline.IsZero() || d.Before(deadline) {
			return d
		}
	}
	return deadline
}

// retryAllowed takes a retry from the budget and waits out the backoff;
// false when the budget or the route deadline says no.
func (pd *pod) retryAllowed(view *clusterView, deadline time.Time, attempt int, pol retry.Policy) bool {
	p := pd.p
	if !view.budget.TryRetry() {
		p.metrics.retries.WithLabelValues("budget_exhausted").Inc()
		return false
	}
	wait := pol.Backoff(attempt, rand.Float64)
	if !deadline.IsZero() && time.Now().Add(wait).After(deadline) {
		return false
	}
	p.metrics.retries.WithLabelValues("retried").Inc()
	return sleepCtx(pd.ctx, wait) == nil
}

// pickEndpoint picks an endpoint that is not ejected and, if possible,
// not tried yet for this request.
func pickEndpoint(view *clusterView, tried []int) (int, bool) {
	od := view.outlier
	ejected := func(i int) bool { return od != nil && od.Ejected(view.addrs[i]) }
	if len(tried) > 0 {
		if i, ok := view.picker.Pick(func(i int) bool {
			for _, t := range tried {
				if t == i {
					return true
				}
			}
			return ejected(i)
		}); ok {
			return i, true
		}
	}
	if od == nil {
		return view.picker.Pick(nil)
	}
	if i, ok := view.picker.Pick(ejected); ok {
		return i, true
	}
	return view.picker.Pick(nil) // everything ejected: use them anyway
}

// try sends the request to ep once, on a kept-alive connection when there
// is one, and reads the response head into hc.resp.
func (hc *h1client) try(st *clusterState, view *clusterView, ep *meshcfg.Endpoint, head []byte, body h1.Body, replayable bool, deadline time.Time) (*upConn, outcome) {
	for fresh := false; ; fresh = true {
		var u *upConn
		if !fresh {
			u = hc.pd.pool.get(ep.Addr)
		}
		reused := u != nil
		if u == nil {
			var res outcome
			if u, res = hc.dial(st, view, ep, deadline); u == nil {
				return nil, res
			}
		}
		if !deadline.IsZero() {
			_ = u.c.SetDeadline(deadline)
		}
		err := hc.send(u, head, body, replayable)
		if err == nil {
			err = hc.resp.ReadResponse(u.br)
			for err == nil && hc.resp.Status >= 100 && hc.resp.Status < 200 && hc.resp.Status != 101 {
				// An interim response: pass it on and wait for the final one.
				if _, err = hc.c.Write(hc.responseHead(nil, true)); err == nil {
					err = hc.resp.ReadResponse(u.br)
				}
			}
		}
		if err == nil {
			return u, gotResponse
		}
		u.close()
		if isTimeout(err) {
			return nil, timedOut
		}
		if reused && replayable && u.br.Buffered() == 0 {
			// The server closed a kept-alive connection before reading
			// this request: send it again on a new connection.
			continue
		}
		return nil, resetBeforeResponse
	}
}

// dial opens a new upstream connection to ep.
func (hc *h1client) dial(st *clusterState, view *clusterView, ep *meshcfg.Endpoint, deadline time.Time) (*upConn, outcome) {
	pd := hc.pd
	if max := view.policy.MaxConnections; max > 0 && st.conns.Load() >= int64(max) {
		return nil, connectFailed
	}
	ctx, cancel := context.WithTimeout(pd.ctx, dialTimeout)
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(pd.ctx, deadline)
	}
	defer cancel()
	c, err := pd.dialEndpoint(ctx, ep, ep.Addr)
	switch {
	case err == nil:
	case ep.Tunnel && tunnelReason(err) == "denied":
		return nil, denied
	case ep.Tunnel && ctx.Err() != nil && !deadline.IsZero():
		return nil, timedOut
	default:
		return nil, connectFailed
	}
	st.conns.Add(1)
	return &upConn{c: c, br: bufio.NewReaderSize(c, bufSize), ep: ep.Addr, st: st, limit: view.policy.IdleTimeout}, gotResponse
}

// send writes the request head and body to u.
func (hc *h1client) send(u *upConn, head []byte, body h1.Body, replayable bool) error {
	if replayable {
		if len(hc.body) > 0 && len(head)+len(hc.body) <= 2*bufSize {
			buf := append(hc.out[:0], head...)
			buf = append(buf, hc.body...)
			hc.out = buf
			_, err := u.c.Write(buf)
			return err
		}
		if _, err := u.c.Write(head); err != nil {
			return err
		}
		if len(hc.body) > 0 {
			_, err := u.c.Write(hc.body)
			return err
		}
		return nil
	}
	if _, err := u.c.Write(head); err != nil {
		return err
	}
	if len(hc.body) > 0 {
		if _, err := u.c.Write(hc.body); err != nil {
			return err
		}
	}
	_, err := body.Continue(u.c, hc.br, len(hc.body))
	return err
}

// withTrace returns head with the propagation headers of an attempt
// added (head itself when there are none).
func (hc *h1client) withTrace(head []byte, hdrs []telemetry.Header) []byte {
	if len(hdrs) == 0 {
		return head
	}
	out := append(hc.thead[:0], head[:len(head)-2]...)
	for _, h := range hdrs {
		out = append(out, h.Name...)
		out = append(out, ':', ' ')
		out = append(out, h.Value...)
		out = append(out, '\r', '\n')
	}
	out = append(out, '\r', '\n')
	hc.thead = out
	return out
}

// hopByHop are the fields the proxy does not forward: it manages each
// connection itself.
func hopByHop(name []byte) bool {
	switch len(name) {
	case len("Connection"): // and Keep-Alive
		return bytes.EqualFold(name, []byte("Connection")) || bytes.EqualFold(name, []byte("Keep-Alive"))
	case len("Proxy-Connection"):
		return bytes.EqualFold(name, []byte("Proxy-Connection"))
	case len("Expect"):
		return bytes.EqualFold(name, []byte("Expect"))
	}
	return false
}

// requestHead builds the head sent upstream in hc.out: the request line,
// the fields without hop-by-hop ones and with the route's changes.
func (hc *h1client) requestHead(rt *route.Route) []byte {
	line := hc.req.Buf[:bytes.Index(hc.req.Buf, []byte("\r\n"))+2]
	out := hc.head[:0]
	var rewritten string
	var query []byte
	if rt != nil && rt.Rewrite != nil {
		var path []byte
		path, query = hc.req.Path()
		rewritten, _ = rt.RewritePath(&route.Request{Path: string(path)})
	}
	if rewritten != "" {
		p := rewritten
		// A URL rewrite: "METHOD path[?query] HTTP/x.y".
		out = append(out, hc.req.Method...)
		out = append(out, ' ')
		out = append(out, p...)
		if len(query) > 0 {
			out = append(out, '?')
			out = append(out, query...)
		}
		out = append(out, line[bytes.LastIndexByte(line, ' '):]...)
	} else {
		out = append(out, line...)
	}
	mods := rt.RequestMods(hc.be)
	out = appendFields(out, hc.req.Fields, mods, hc.rec.trace != nil)
	if hc.req.Upgrade {
		out = append(out, "Connection: Upgrade\r\n"...)
	}
	out = append(out, '\r', '\n')
	hc.head = out
	return out
}

// responseHead builds the head sent downstream in hc.out.
func (hc *h1client) responseHead(rt *route.Route, keep bool) []byte {
	out := append(hc.out[:0], hc.resp.Buf[:bytes.Index(hc.resp.Buf, []byte("\r\n"))+2]...)
	mods := rt.ResponseMods(hc.be)
	out = appendFields(out, hc.resp.Fields, mods, false)
	switch {
	case hc.resp.Status == 101:
		out = append(out, "Connection: Upgrade\r\n"...)
	case !keep:
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, '\r', '\n')
	hc.out = out
	return out
}

// appendFields appends fields as header lines, dropping hop-by-hop ones
// (and, with dropTrace, the propagation headers the proxy replaces) and
// applying mods (Remove, then Ops, as Envoy does).
func appendFields(out []byte, fields []h1.Field, mods *route.HeaderMods, dropTrace bool) []byte {
	has := func(name string) bool {
		for _, f := range fields {
			if bytes.EqualFold(f.Name, []byte(name)) {
				return true
			}
		}
		return false
	}
fields:
	for _, f := range fields {
		if hopByHop(f.Name) || dropTrace && telemetry.IsPropagated(bstr(f.Name)) {
			continue
		}
		if mods != nil {
			for _, r := range mods.Remove {
				if bytes.EqualFold(f.Name, []byte(r)) {
					continue fields
				}
			}
			for _, op := range mods.Ops {
				if (op.Action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || op.Action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS) &&
					(op.Value != "" || op.KeepEmpty) && bytes.EqualFold(f.Name, []byte(op.Name)) {
					continue fields
				}
			}
		}
		out = append(out, f.Name...)
		out = append(out, ':', ' ')
		out = append(out, f.Value...)
		out = append(out, '\r', '\n')
	}
	if mods == nil {
		return out
	}
	for _, op := range mods.Ops {
		if op.Value == "" && !op.KeepEmpty {
			continue
		}
		switch op.Action {
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if has(op.Name) {
				continue
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if !has(op.Name) {
				continue
			}
		}
		out = append(out, op.Name...)
		out = append(out, ':', ' ')
		out = append(out, op.Value...)
		out = append(out, '\r', '\n')
	}
	return out
}

// respond copies the response whose head is in hc.resp from u to the
// client, and keeps u for reuse when it can carry another request.
func (hc *h1client) respond(u *upConn, rt *route.Route, deadline time.Time, upgrade bool) bool {
	if hc.resp.Status == 101 && upgrade {
		if _, err := hc.c.Write(hc.responseHead(rt, true)); err != nil {
			u.close()
			return false
		}
		_ = u.c.SetDeadline(time.Time{})
		hc.tunnelRaw(u)
		return false
	}
	body := hc.resp.ResponseBody(hc.req.Method)
	keep := !hc.req.Close && (body.Chunked || body.Length >= 0)
	head := hc.responseHead(rt, keep)
	// One write for a small response whose body is already here.
	if !body.Chunked && body.Length > 0 && int(body.Length) <= u.br.Buffered() && len(head)+int(body.Length) <= 2*bufSize {
		p, _ := u.br.Peek(int(body.Length))
		hc.out = append(hc.out, p...)
		_, _ = u.br.Discard(len(p))
		body = h1.Body{}
	}
	if _, err := hc.c.Write(hc.out); err != nil {
		u.close()
		return false
	}
	if !body.Empty() {
		if _, err := body.Copy(hc.c, u.br); err != nil {
			u.close()
			return false
		}
	}
	if hc.resp.Close || body.Length < 0 && !body.Chunked || u.br.Buffered() > 0 {
		u.close()
	} else {
		if !deadline.IsZero() {
			_ = u.c.SetDeadline(time.Time{})
		}
		hc.pd.pool.put(u)
	}
	return keep
}

// dropResponse discards a response that will be retried: its body is
// read when small and already framed, else the connection is closed.
func (hc *h1client) dropResponse(u *upConn) {
	body := hc.resp.ResponseBody(hc.req.Method)
	if !body.Chunked && body.Length >= 0 && body.Length <= 64<<10 && !hc.resp.Close {
		if _, err := body.Copy(io.Discard, u.br); err == nil && u.br.Buffered() == 0 {
			_ = u.c.SetDeadline(time.Time{})
			hc.pd.pool.put(u)
			return
		}
	}
	u.close()
}

// tunnelRaw carries an upgraded connection (WebSocket, CONNECT) as bytes.
func (hc *h1client) tunnelRaw(u *upConn) {
	rawBoth(hc.c, hc.br, u.c, u.br)
	u.close()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	c.Close()
}

// failReply answers a request that got no response.
func (hc *h1client) failReply(res outcome) bool {
	switch res {
	case timedOut:
		return hc.local(http.StatusGatewayTimeout, replyTimeout, false)
	case connectFailed:
		return hc.local(http.StatusServiceUnavailable, replyConnectFailed, false)
	case denied:
		return hc.local(http.StatusForbidden, replyDenied, false)
	default:
		return hc.local(http.StatusServiceUnavailable, replyReset, false)
	}
}

// discardAndReply reads past the request body and answers locally.
func (hc *h1client) discardAndReply(status int, reason string) bool {
	if _, err := hc.req.RequestBody().Copy(io.Discard, hc.br); err != nil {
		return hc.local(status, reason, true)
	}
	return hc.local(status, reason, false)
}

// local writes a response the proxy makes itself.
func (hc *h1client) local(status int, reason string, closeConn bool) bool {
	closeConn = closeConn || hc.req.Close
	hc.pd.p.metrics.requests.WithLabelValues("outbound", strconv.Itoa(status), reason).Inc()
	hc.pd.finish(&hc.rec, status, reason)
	text := localText(reason)
	out := hc.out[:0]
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\nContent-Type: text/plain\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(text)), 10)
	out = append(out, "\r\nX-Weft-Local-Reply: "...)
	out = append(out, reason...)
	if hc.location != "" {
		out = append(out, "\r\nLocation: "...)
		out = append(out, hc.location...)
		hc.location = ""
	}
	if closeConn {
		out = append(out, "\r\nConnection: close"...)
	}
	out = append(out, "\r\n\r\n"...)
	out = append(out, text...)
	hc.out = out
	_, err := hc.c.Write(out)
	return err == nil && !closeConn
}

func localText(reason string) string {
	switch reason {
	case replyNoRoute:
		return "route not found\n"
	case replyInvalidBackend:
		return "the route's backend does not exist\n"
	case replyNoHealthy:
		return "no healthy upstream\n"
	case replyConnectFailed:
		return "upstream connect error\n"
	case replyReset:
		return "upstream reset before response\n"
	case replyTimeout:
		return "upstream request timeout\n"
	case replyOverflow:
		return "upstream overflow: too many requests\n"
	case replyFault:
		return "fault filter abort\n"
	case replyDenied:
		return "RBAC: access denied\n"
	case replyNoService:
		return "the Service is gone\n"
	case replyRedirect:
		return "redirect\n"
	default:
		return "bad request\n"
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
