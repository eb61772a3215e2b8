package telemetry

import (
	"context"
	"encoding/hex"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Carrier reads and writes a request's headers for propagation: Get looks
// a header up (case-insensitively), Set records one to send.
type Carrier struct {
	Lookup func(name string) string
	Out    []Header
}

// Header is a header to add to the forwarded request.
type Header struct{ Name, Value string }

func (c *Carrier) Get(key string) string { return c.Lookup(key) }
func (c *Carrier) Set(key, value string) { c.Out = append(c.Out, Header{key, value}) }
func (c *Carrier) Keys() []string        { return nil }

// Propagated lists the headers propagation reads and writes: the proxy
// drops them from a forwarded request and adds its own.
var Propagated = []string{"traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags"}

// IsPropagated reports whether name (any case) is one of Propagated.
func IsPropagated(name string) bool {
	for _, p := range Propagated {
		if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
}

var w3c = propagation.TraceContext{}

// Extract returns the context of an incoming request: W3C traceparent
// (and tracestate) first, else B3 (single "b3" header, or the X-B3-*
// headers). b3 reports that the request carried B3 headers, so that
// Inject answers in kind.
func Extract(ctx context.Context, c *Carrier) (out context.Context, b3 bool) {
	b3 = c.Lookup("b3") != "" || c.Lookup("x-b3-traceid") != ""
	if c.Lookup("traceparent") != "" {
		return w3c.Extract(ctx, c), b3
	}
	if sc, ok := extractB3(c); ok {
		return trace.ContextWithRemoteSpanContext(ctx, sc), true
	}
	return ctx, b3
}

// Inject writes the span context of ctx into c.Out: traceparent and
// tracestate always, and the X-B3-* headers too when b3.
func Inject(ctx context.Context, c *Carrier, b3 bool) {
	w3c.Inject(ctx, c)
	if !b3 {
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	c.Set("X-B3-TraceId", sc.TraceID().String())
	c.Set("X-B3-SpanId", sc.SpanID().String())
	if sc.IsSampled() {
		c.Set("X-B3-Sampled", "1")
	} else {
		c.Set("X-B3-Sampled", "0")
	}
}

// extractB3 reads "b3: {trace}-{span}[-{sampled}[-{parent}]]" or the
// multi-header form. A 64-bit trace ID is left-padded to 128 bits.
func extractB3(c *Carrier) (trace.SpanContext, bool) {
	var traceID, spanID, sampled string
	if v := c.Lookup("b3"); v != "" {
		parts := strings.Split(v, "-")
		if len(parts) < 2 {
			return trace.SpanContext{}, false
		}
		traceID, spanID = parts[0], parts[1]
		if len(parts) > 2 {
			sampled = parts[2]
		}
	} else {
		traceID, spanID = c.Lookup("x-b3-traceid"), c.Lookup("x-b3-spanid")
		sampled = c.Lookup("x-b3-sampled")
		if c.Lookup("x-b3-flags") == "1" {
			sampled = "d"
		}
	}
	if len(traceID) == 16 {
		traceID = "0000000000000000" + traceID
	}
	var tid trace.TraceID
	var sid trace.SpanID
	if len(traceID) != 32 || len(spanID) != 16 {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(tid[:], []byte(traceID)); err != nil {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(sid[:], []byte(spanID)); err != nil {
		return trace.SpanContext{}, false
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}
	switch strings.ToLower(sampled) {
	case "1", "d", "true":
		cfg.TraceFlags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}
