package proxy

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
	"github.com/weftmesh/weft/node-proxy/internal/tunnel"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// reqTrace is the CLIENT span of one request on the source node proxy,
// with a child span per attempt. A nil *reqTrace (tracing off) does
// nothing.
type reqTrace struct {
	t    trace.Tracer
	ctx  context.Context
	span trace.Span
	b3   bool // the caller propagated B3: answer in kind
	name string
}

// startRequest starts the request's span, continuing the caller's trace
// (W3C trace context or B3) when it sent one.
func (pd *pod) startRequest(lookup func(string) string, method, path, host string, http2 bool, sp *meshcfg.ServicePort) *reqTrace {
	t := pd.p.tracer
	if !t.Enabled() {
		return nil
	}
	ctx, b3 := telemetry.Extract(context.Background(), &telemetry.Carrier{Lookup: lookup})
	version := "1.1"
	if http2 {
		version = "2"
	}
	ctx, span := t.Start(ctx, method, trace.WithSpanKind(trace.SpanKindClient))
	if !span.IsRecording() {
		// Not sampled: only the context travels on.
		return &reqTrace{t: t, ctx: ctx, span: span, b3: b3, name: method}
	}
	span.SetAttributes(
		attribute.String("http.request.method", method),
		attribute.String("url.path", path),
		attribute.String("server.address", host),
		attribute.Int("server.port", int(sp.Port)),
		attribute.String("network.protocol.name", "http"),
		attribute.String("network.protocol.version", version),
		attribute.String(telemetry.AttrService, sp.Service),
		attribute.String(telemetry.AttrSourceWorkload, pd.key),
		attribute.String(telemetry.AttrSourceNamespace, pd.namespace),
		attribute.String(telemetry.AttrNode, pd.p.cfg.Node),
	)
	if mc := pd.p.mesh.Load(); mc != nil {
		if w, ok := mc.Workload(pd.key); ok {
			span.SetAttributes(attribute.String(telemetry.AttrSourceID, w.Identity.String()))
			if len(w.Addrs) > 0 {
				span.SetAttributes(attribute.String("client.address", w.Addrs[0].String()))
			}
		}
	}
	return &reqTrace{t: t, ctx: ctx, span: span, b3: b3, name: method}
}

// identity is the pod's SPIFFE ID from the configuration.
func (pd *pod) identity() (string, bool) {
	mc := pd.p.mesh.Load()
	if mc == nil {
		return "", false
	}
	w, ok := mc.Workload(pd.key)
	if !ok {
		return "", false
	}
	return w.Identity.String(), true
}

// routed records the matched route: the span is named "METHOD route".
func (rt *reqTrace) routed(route, cluster string) {
	if rt == nil || !rt.span.IsRecording() {
		return
	}
	if route != "" {
		rt.name += " " + route
		rt.span.SetName(rt.name)
		rt.span.SetAttributes(attribute.String("http.route", route))
	}
	rt.span.SetAttributes(attribute.String(telemetry.AttrCluster, cluster))
}

// fault records an injected fault.
func (rt *reqTrace) fault(kind string) {
	if rt != nil {
		rt.span.SetAttributes(attribute.String(telemetry.AttrFault, kind))
	}
}

// attempt starts the span of try n (0 for the first) to ep and returns
// the propagation headers for the forwarded request.
func (rt *reqTrace) attempt(n int, ep *meshcfg.Endpoint) (trace.Span, []telemetry.Header) {
	if rt == nil {
		return nil, nil
	}
	ctx, span := rt.t.Start(rt.ctx, rt.name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.Int(telemetry.AttrRetryAttempt, n),
			attribute.String("server.address", ep.Addr.Addr().String()),
			attribute.Int("server.port", int(ep.Addr.Port())),
			attribute.String(telemetry.AttrDestinationID, ep.Identity.String()),
			attribute.String(telemetry.AttrDestinationWorkload, ep.Pod),
		)
	}
	c := &telemetry.Carrier{Lookup: func(string) string { return "" }}
	telemetry.Inject(ctx, c, rt.b3)
	return span, c.Out
}

// endAttempt ends an attempt's span with its outcome.
func endAttempt(span trace.Span, status int, res outcome) {
	if span == nil {
		return
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case res == timedOut:
		span.SetAttributes(attribute.Bool(telemetry.AttrTimeout, true))
		span.SetStatus(codes.Error, "timeout")
	case res != gotResponse:
		span.SetStatus(codes.Error, outcomeName(res))
	case status >= 500:
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}

func outcomeName(o outcome) string {
	switch o {
	case connectFailed:
		return "connect failed"
	case resetBeforeResponse:
		return "reset before response"
	case timedOut:
		return "timeout"
	case denied:
		return "denied"
	}
	return "response"
}

// end ends the request's span with the status sent to the client and,
// for an answer the proxy made, its reason.
func (rt *reqTrace) end(status int, localReason string) {
	if rt == nil {
		return
	}
	if !rt.span.IsRecording() {
		rt.span.End()
		return
	}
	rt.span.SetAttributes(attribute.Int("http.response.status_code", status))
	if localReason != "" {
		rt.span.SetAttributes(attribute.String(telemetry.AttrLocalReply, localReason))
		switch localReason {
		case replyNoHealthy:
			rt.span.SetAttributes(attribute.Bool(telemetry.AttrNoHealthyUpstream, true))
		case replyTimeout:
			rt.span.SetAttributes(attribute.Bool(telemetry.AttrTimeout, true))
		case replyDenied:
			rt.span.SetAttributes(attribute.Bool(telemetry.AttrDenied, true))
		case replyFault:
			rt.span.SetAttributes(attribute.String(telemetry.AttrFault, "abort"))
		}
	}
	if status >= 500 {
		rt.span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	rt.span.End()
}

// startServer starts the SERVER span of a request arriving at this pod
// through a tunnel from peer, continuing the trace the request carries,
// and returns the propagation headers to hand to the application (the
// SERVER span's context). Nil span when tracing is off.
func (pd *pod) startServer(lookup func(string) string, method, path string, peer spiffeid.ID, client net.Addr, dst netip.AddrPort, http2 bool) (trace.Span, []telemetry.Header) {
	t := pd.p.tracer
	if !t.Enabled() {
		return nil, nil
	}
	ctx, b3 := telemetry.Extract(context.Background(), &telemetry.Carrier{Lookup: lookup})
	version := "1.1"
	if http2 {
		version = "2"
	}
	ctx, span := t.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", method),
			attribute.String("url.path", path),
			attribute.String("server.address", dst.Addr().String()),
			attribute.Int("server.port", int(dst.Port())),
			attribute.String("network.protocol.name", "http"),
			attribute.String("network.protocol.version", version),
			attribute.String(telemetry.AttrSourceID, peer.String()),
			attribute.String(telemetry.AttrDestinationWorkload, pd.key),
			attribute.String(telemetry.AttrDestinationNS, pd.namespace),
			attribute.String(telemetry.AttrNode, pd.p.cfg.Node),
		)
		if id, ok := pd.identity(); ok {
			span.SetAttributes(attribute.String(telemetry.AttrDestinationID, id))
		}
		if ns, _, ok := certs.WorkloadFromID(peer); ok {
			span.SetAttributes(attribute.String(telemetry.AttrSourceNamespace, ns))
		}
		if a, ok := client.(*net.TCPAddr); ok {
			span.SetAttributes(attribute.String("client.address", a.IP.String()))
		}
	}
	c := &telemetry.Carrier{Lookup: func(string) string { return "" }}
	telemetry.Inject(ctx, c, b3)
	return span, c.Out
}

// endServer ends a SERVER span with the status sent back (denied: the
// proxy refused it).
func endServer(span trace.Span, status int, denied bool) {
	if span == nil {
		return
	}
	if !span.IsRecording() {
		span.End()
		return
	}
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	if denied {
		span.SetAttributes(attribute.Bool(telemetry.AttrDenied, true))
	}
	if status >= 500 || status == 0 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	span.End()
}

// connTrace is the CLIENT span of a connection carried at L4; nil when
// tracing is off.
type connTrace struct {
	span trace.Span
	hdr  tunnel.Headers // the span's context for the tunnel's CONNECT
}

// startConn starts the span of an outbound L4 connection to dst.
func (pd *pod) startConn(dst netip.AddrPort, start time.Time) *connTrace {
	t := pd.p.tracer
	if !t.Enabled() {
		return nil
	}
	ctx, span := t.Start(context.Background(), "tcp "+dst.String(), trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(
			attribute.String("network.transport", "tcp"),
			attribute.String("server.address", dst.Addr().String()),
			attribute.Int("server.port", int(dst.Port())),
			attribute.String(telemetry.AttrSourceWorkload, pd.key),
			attribute.String(telemetry.AttrSourceNamespace, pd.namespace),
			attribute.String(telemetry.AttrNode, pd.p.cfg.Node),
		))
	c := &telemetry.Carrier{Lookup: func(string) string { return "" }}
	telemetry.Inject(ctx, c, false)
	ct := &connTrace{span: span}
	for _, h := range c.Out {
		switch h.Name {
		case "traceparent":
			ct.hdr.Traceparent = h.Value
		case "tracestate":
			ct.hdr.Tracestate = h.Value
		}
	}
	return ct
}

func (ct *connTrace) headers() tunnel.Headers {
	if ct == nil {
		return tunnel.Headers{}
	}
	return ct.hdr
}

// end ends the connection's span: result is how it was carried (or
// refused, with reason), up and down the bytes each way.
func (ct *connTrace) end(result, reason string, up, down int64) {
	if ct == nil {
		return
	}
	ct.span.SetAttributes(attribute.String("weft.result", result), attribute.Int64("weft.bytes_sent", up), attribute.Int64("weft.bytes_received", down))
	if reason != "" {
		ct.span.SetAttributes(attribute.String("weft.reason", reason))
		ct.span.SetStatus(codes.Error, reason)
	}
	ct.span.End()
}

// serverConnSpan records the SERVER span of a tunnel stream carried at L4
// (HTTP ports have a span per request instead), continuing the client's
// connection span from the CONNECT's traceparent.
func (pd *pod) serverConnSpan(e tunnel.StreamEnd) {
	t := pd.p.tracer
	if !t.Enabled() {
		return
	}
	if _, w, ok := pd.workload(); ok {
		switch w.PortProtocol(e.Authority.Port()) {
		case xdsv1.Protocol_PROTOCOL_HTTP, xdsv1.Protocol_PROTOCOL_HTTP2, xdsv1.Protocol_PROTOCOL_GRPC:
			if e.Status == 200 {
				return
			}
		}
	}
	hdr := e.Headers
	ctx, _ := telemetry.Extract(context.Background(), &telemetry.Carrier{Lookup: func(name string) string {
		switch name {
		case "traceparent":
			return hdr.Traceparent
		case "tracestate":
			return hdr.Tracestate
		}
		return ""
	}})
	_, span := t.Start(ctx, "tcp "+e.Authority.String(), trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(e.Start),
		trace.WithAttributes(
			attribute.String("network.transport", "tcp"),
			attribute.String("server.address", e.Authority.Addr().String()),
			attribute.Int("server.port", int(e.Authority.Port())),
			attribute.String(telemetry.AttrSourceID, e.Peer.ID.String()),
			attribute.String(telemetry.AttrDestinationWorkload, pd.key),
			attribute.String(telemetry.AttrDestinationNS, pd.namespace),
			attribute.String(telemetry.AttrNode, pd.p.cfg.Node),
			attribute.Int("weft.tunnel.status", e.Status),
			attribute.Int64("weft.bytes_received", e.Rx),
			attribute.Int64("weft.bytes_sent", e.Tx),
		))
	if e.Status != 200 {
		span.SetAttributes(attribute.String("weft.reason", e.Reason))
		if e.Status == 401 || e.Status == 403 {
			span.SetAttributes(attribute.Bool(telemetry.AttrDenied, true))
		}
		span.SetStatus(codes.Error, e.Reason)
	}
	span.End(trace.WithTimestamp(e.Start.Add(e.Duration)))
}

// grpcCall adds the RPC semantic conventions of a gRPC call with path
// "/package.Service/Method".
func (rt *reqTrace) grpcCall(path string) {
	if rt == nil || !rt.span.IsRecording() {
		return
	}
	svc, method, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	rt.span.SetAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", svc), attribute.String("rpc.method", method))
}

// grpcStatus records the call's grpc-status (from the response headers
// or trailers).
func (rt *reqTrace) grpcStatus(v string) {
	if rt == nil || v == "" || !rt.span.IsRecording() {
		return
	}
	if n, err := strconv.Atoi(v); err == nil {
		rt.span.SetAttributes(attribute.Int("rpc.grpc.status_code", n))
		if n != 0 {
			rt.span.SetStatus(codes.Error, "grpc-status "+v)
		}
	}
}
