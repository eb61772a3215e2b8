package otlpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
)

func startSink(t *testing.T, grpcAddr, httpAddr string) *Sink {
	t.Helper()
	s, err := Start(grpcAddr, httpAddr)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func testResource() *resource.Resource {
	return resource.NewSchemaless(
		attribute.String("service.name", "weft-e2e"),
		attribute.String("weft.node", "node-a"),
	)
}

type sentTrace struct {
	traceID, serverID, clientID string
}

// sendTrace emits a SERVER span with a CLIENT child through a tracer
// provider that exports synchronously via exp.
func sendTrace(t *testing.T, exp sdktrace.SpanExporter) sentTrace {
	t.Helper()
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(testResource()),
	)
	defer func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("tracer provider shutdown: %v", err)
		}
	}()
	tr := tp.Tracer("weft/otlpsink-test")

	ctx, server := tr.Start(context.Background(), "inbound GET /orders",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "GET")))
	_, client := tr.Start(ctx, "outbound orders-db",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("peer.service", "orders-db"),
			attribute.Int("weft.retries", 2),
			attribute.Float64("weft.weight", 0.5),
			attribute.Bool("weft.mtls", true),
			attribute.StringSlice("weft.zones", []string{"a", "b"}),
		))
	client.AddEvent("retry")
	client.SetStatus(otelcodes.Error, "upstream reset")
	client.End()
	server.SetStatus(otelcodes.Ok, "")
	server.End()

	return sentTrace{
		traceID:  server.SpanContext().TraceID().String(),
		serverID: server.SpanContext().SpanID().String(),
		clientID: client.SpanContext().SpanID().String(),
	}
}

func waitSpans(t *testing.T, s *Sink, n int) []Span {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []Span
	err := s.WaitFor(ctx, func(spans []Span) bool {
		got = spans
		return len(spans) >= n
	})
	if err != nil {
		t.Fatalf("waiting for %d spans (have %d): %v\n%s", n, len(got), err, Tree(got))
	}
	return got
}

func checkTrace(t *testing.T, spans []Span, want sentTrace, protocol string) {
	t.Helper()
	tr := Trace(spans, want.traceID)
	if len(tr) != 2 {
		t.Fatalf("trace %s has %d spans, want 2:\n%s", want.traceID, len(tr), Tree(spans))
	}
	// WithSyncer exports on End: the client child ends (and arrives) first.
	client, server := tr[0], tr[1]
	if client.SpanID != want.clientID || server.SpanID != want.serverID {
		t.Fatalf("span IDs = %s,%s, want %s,%s", client.SpanID, server.SpanID, want.clientID, want.serverID)
	}
	if len(server.TraceID) != 32 || strings.ToLower(server.TraceID) != server.TraceID {
		t.Errorf("trace ID %q is not lower-case 32-char hex", server.TraceID)
	}
	if server.ParentSpanID != "" {
		t.Errorf("server ParentSpanID = %q, want root", server.ParentSpanID)
	}
	if client.ParentSpanID != want.serverID {
		t.Errorf("client ParentSpanID = %q, want %q", client.ParentSpanID, want.serverID)
	}
	if server.Kind != "SERVER" || client.Kind != "CLIENT" {
		t.Errorf("kinds = %s/%s, want SERVER/CLIENT", server.Kind, client.Kind)
	}
	if server.Name != "inbound GET /orders" || client.Name != "outbound orders-db" {
		t.Errorf("names = %q/%q", server.Name, client.Name)
	}
	if server.StatusCode != "OK" || client.StatusCode != "ERROR" || client.StatusMessage != "upstream reset" {
		t.Errorf("status = %s / %s %q", server.StatusCode, client.StatusCode, client.StatusMessage)
	}
	wantAttrs := map[string]any{
		"peer.service": "orders-db",
		"weft.retries": int64(2),
		"weft.weight":  0.5,
		"weft.mtls":    true,
		"weft.zones":   []any{"a", "b"},
	}
	if !reflect.DeepEqual(client.Attrs, wantAttrs) {
		t.Errorf("client attrs = %#v, want %#v", client.Attrs, wantAttrs)
	}
	if !reflect.DeepEqual(server.Attrs, map[string]any{"http.request.method": "GET"}) {
		t.Errorf("server attrs = %#v", server.Attrs)
	}
	for _, sp := range tr {
		if sp.Resource["service.name"] != "weft-e2e" || sp.Resource["weft.node"] != "node-a" {
			t.Errorf("%s resource = %#v", sp.Name, sp.Resource)
		}
		if sp.Scope != "weft/otlpsink-test" {
			t.Errorf("%s scope = %q", sp.Name, sp.Scope)
		}
		if sp.Protocol != protocol {
			t.Errorf("%s protocol = %q, want %q", sp.Name, sp.Protocol, protocol)
		}
		if sp.Start.IsZero() || sp.End.Before(sp.Start) {
			t.Errorf("%s times = %v..%v", sp.Name, sp.Start, sp.End)
		}
	}
	if !reflect.DeepEqual(client.Events, []string{"retry"}) {
		t.Errorf("client events = %v", client.Events)
	}
	if kids := Children(spans, want.serverID); len(kids) != 1 || kids[0].SpanID != want.clientID {
		t.Errorf("Children(server) = %v", kids)
	}
	tree := Tree(tr)
	if !strings.HasPrefix(tree, "SERVER inbound GET /orders [http.request.method=GET] OK ") ||
		!strings.Contains(tree, "\n  CLIENT outbound orders-db [peer.service=orders-db weft.mtls=true weft.retries=2 weft.weight=0.5 weft.zones=[a,b]] ERROR \"upstream reset\" ") {
		t.Errorf("unexpected tree:\n%s", tree)
	}
}

func newGRPCExporter(t *testing.T, s *Sink, opts ...otlptracegrpc.Option) *otlptrace.Exporter {
	t.Helper()
	base := []otlptracegrpc.Option{
		otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithEndpoint(s.GRPCAddr()),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
	}
	exp, err := otlptracegrpc.New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("otlptracegrpc.New: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

func newHTTPExporter(t *testing.T, s *Sink, opts ...otlptracehttp.Option) *otlptrace.Exporter {
	t.Helper()
	base := []otlptracehttp.Option{
		otlptracehttp.WithInsecure(),
		otlptracehttp.WithEndpoint(s.HTTPAddr()),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
	}
	exp, err := otlptracehttp.New(context.Background(), append(base, opts...)...)
	if err != nil {
		t.Fatalf("otlptracehttp.New: %v", err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp
}

func TestGRPCExport(t *testing.T) {
	s := startSink(t, "127.0.0.1:0", "")
	if s.HTTPAddr() != "" || s.HTTPURL() != "" {
		t.Fatalf("HTTP should be disabled, got %q", s.HTTPAddr())
	}
	want := sendTrace(t, newGRPCExporter(t, s))
	checkTrace(t, waitSpans(t, s, 2), want, "grpc")
	if st := s.Stats(); st.GRPCRequests != 2 || st.HTTPRequests != 0 || st.Spans != 2 || st.FailedRequests != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestGRPCExportGzip(t *testing.T) {
	s := startSink(t, "127.0.0.1:0", "")
	want := sendTrace(t, newGRPCExporter(t, s, otlptracegrpc.WithCompressor("gzip")))
	checkTrace(t, waitSpans(t, s, 2), want, "grpc")
}

func TestHTTPExport(t *testing.T) {
	s := startSink(t, "", "127.0.0.1:0")
	if s.GRPCAddr() != "" {
		t.Fatalf("gRPC should be disabled, got %q", s.GRPCAddr())
	}
	want := sendTrace(t, newHTTPExporter(t, s))
	checkTrace(t, waitSpans(t, s, 2), want, "http")
	if st := s.Stats(); st.HTTPRequests != 2 || st.GRPCRequests != 0 || st.Spans != 2 || st.FailedRequests != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestHTTPExportGzip(t *testing.T) {
	s := startSink(t, "", "127.0.0.1:0")
	want := sendTrace(t, newHTTPExporter(t, s, otlptracehttp.WithCompression(otlptracehttp.GzipCompression)))
	checkTrace(t, waitSpans(t, s, 2), want, "http")
}

func TestBothProtocolsAndReset(t *testing.T) {
	s := startSink(t, "127.0.0.1:0", "127.0.0.1:0")
	g := sendTrace(t, newGRPCExporter(t, s))
	h := sendTrace(t, newHTTPExporter(t, s))
	spans := waitSpans(t, s, 4)
	checkTrace(t, spans, g, "grpc")
	checkTrace(t, spans, h, "http")
	if st := s.Stats(); st.GRPCRequests != 2 || st.HTTPRequests != 2 || st.Spans != 4 {
		t.Errorf("stats = %+v", st)
	}
	// Spans returns a copy.
	spans[0].Attrs["mutated"] = true
	spans[0].Name = "mutated"
	if again := s.Spans(); again[0].Name == "mutated" || again[0].Attrs["mutated"] != nil {
		t.Error("Spans did not return a copy")
	}
	s.Reset()
	if n := len(s.Spans()); n != 0 {
		t.Errorf("after Reset: %d spans", n)
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("after Reset: stats = %+v", st)
	}
}

// recordSpans produces ReadOnlySpans so that tests can call an exporter's
// ExportSpans directly and observe its error.
func recordSpans(t *testing.T) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithResource(testResource()))
	_, sp := tp.Tracer("weft/otlpsink-test").Start(context.Background(), "op", trace.WithSpanKind(trace.SpanKindInternal))
	sp.End()
	return rec.Ended()
}

func TestSetFailGRPC(t *testing.T) {
	s := startSink(t, "127.0.0.1:0", "")
	exp := newGRPCExporter(t, s)
	ro := recordSpans(t)
	ctx := context.Background()

	s.SetFail(codes.Unavailable)
	err := exp.ExportSpans(ctx, ro)
	if err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("export with SetFail(Unavailable): err = %v, want Unavailable", err)
	}
	s.SetFail(codes.InvalidArgument)
	if err := exp.ExportSpans(ctx, ro); err == nil {
		t.Fatal("export with SetFail(InvalidArgument) succeeded")
	}
	if n := len(s.Spans()); n != 0 {
		t.Fatalf("failed exports stored %d spans", n)
	}
	s.SetFail(codes.OK)
	if err := exp.ExportSpans(ctx, ro); err != nil {
		t.Fatalf("export after SetFail(OK): %v", err)
	}
	if st := s.Stats(); st.GRPCRequests != 3 || st.FailedRequests != 2 || st.Spans != 1 {
		t.Errorf("stats = %+v", st)
	}
	if sp := s.Spans(); len(sp) != 1 || sp[0].Kind != "INTERNAL" || sp[0].StatusCode != "UNSET" {
		t.Errorf("spans = %+v", sp)
	}
}

func TestSetFailHTTP(t *testing.T) {
	s := startSink(t, "", "127.0.0.1:0")
	exp := newHTTPExporter(t, s)
	ro := recordSpans(t)
	ctx := context.Background()

	s.SetFail(codes.Internal) // -> HTTP 500
	err := exp.ExportSpans(ctx, ro)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("export with SetFail(Internal): err = %v, want HTTP 500", err)
	}
	s.SetFailHTTP(http.StatusServiceUnavailable)
	if err := exp.ExportSpans(ctx, ro); err == nil {
		t.Fatal("export with SetFailHTTP(503) succeeded")
	}
	s.SetFailHTTP(0)
	if err := exp.ExportSpans(ctx, ro); err != nil {
		t.Fatalf("export after SetFailHTTP(0): %v", err)
	}
	if st := s.Stats(); st.HTTPRequests != 3 || st.FailedRequests != 2 || st.Spans != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSetDelay(t *testing.T) {
	s := startSink(t, "127.0.0.1:0", "127.0.0.1:0")
	ro := recordSpans(t)
	const delay = 300 * time.Millisecond
	s.SetDelay(delay)

	for name, exp := range map[string]sdktrace.SpanExporter{
		"grpc": newGRPCExporter(t, s),
		"http": newHTTPExporter(t, s),
	} {
		start := time.Now()
		if err := exp.ExportSpans(context.Background(), ro); err != nil {
			t.Fatalf("%s: export: %v", name, err)
		}
		if el := time.Since(start); el < delay {
			t.Errorf("%s: export took %v, want >= %v", name, el, delay)
		}
	}

	// An exporter whose timeout is shorter than the delay gives up.
	for name, exp := range map[string]sdktrace.SpanExporter{
		"grpc": newGRPCExporter(t, s, otlptracegrpc.WithTimeout(50*time.Millisecond)),
		"http": newHTTPExporter(t, s, otlptracehttp.WithTimeout(50*time.Millisecond)),
	} {
		if err := exp.ExportSpans(context.Background(), ro); err == nil {
			t.Errorf("%s: export with 50ms timeout against %v delay succeeded", name, delay)
		}
	}
	s.SetDelay(0)
	if got := len(s.Spans()); got != 2 {
		t.Errorf("stored %d spans, want 2 (timed-out exports must not be stored)", got)
	}
}

func TestWaitForContext(t *testing.T) {
	s := startSink(t, "127.0.0.1:0", "")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := s.WaitFor(ctx, func([]Span) bool { calls++; return false })
	if err != context.DeadlineExceeded {
		t.Fatalf("WaitFor = %v, want DeadlineExceeded", err)
	}
	if calls != 1 {
		t.Errorf("cond evaluated %d times without any change, want 1 (no busy loop)", calls)
	}
}

func TestHTTPProtocolErrors(t *testing.T) {
	s := startSink(t, "", "127.0.0.1:0")
	url := s.HTTPURL()

	good, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{
		ResourceSpans: []*tracepb.ResourceSpans{{
			ScopeSpans: []*tracepb.ScopeSpans{{
				Spans: []*tracepb.Span{{
					TraceId: bytes.Repeat([]byte{0xab}, 16),
					SpanId:  bytes.Repeat([]byte{0xcd}, 8),
					Name:    "raw",
					Kind:    tracepb.Span_SPAN_KIND_PRODUCER,
					Attributes: []*commonpb.KeyValue{{
						Key:   "k",
						Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{{Key: "x", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}}}}}},
					}},
				}},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("definitely not protobuf \xff\xff\xff"))
	_ = zw.Close()

	post := func(contentType, encoding string, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = resp.Body.Close() })
		return resp
	}

	for _, tc := range []struct {
		name, ct, enc string
		body          []byte
		want          int
	}{
		{"json", "application/json", "", good, http.StatusUnsupportedMediaType},
		{"text", "text/plain", "", good, http.StatusUnsupportedMediaType},
		{"none", "", "", good, http.StatusUnsupportedMediaType},
		{"brotli", "application/x-protobuf", "br", good, http.StatusUnsupportedMediaType},
		{"garbage", "application/x-protobuf", "", []byte("\xff\xff\xff\xff"), http.StatusBadRequest},
		{"bad-gzip", "application/x-protobuf", "gzip", []byte("not gzip"), http.StatusBadRequest},
		{"gzip-garbage", "application/x-protobuf", "gzip", gz.Bytes(), http.StatusBadRequest},
		{"ok-with-params", "application/x-protobuf; charset=binary", "", good, http.StatusOK},
	} {
		if resp := post(tc.ct, tc.enc, tc.body); resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", resp.StatusCode)
	}

	spans := s.Spans()
	if len(spans) != 1 {
		t.Fatalf("stored %d spans, want 1", len(spans))
	}
	sp := spans[0]
	if sp.TraceID != strings.Repeat("ab", 16) || sp.SpanID != strings.Repeat("cd", 8) || sp.ParentSpanID != "" ||
		sp.Kind != "PRODUCER" || sp.Protocol != "http" || !reflect.DeepEqual(sp.Attrs["k"], map[string]any{"x": int64(1)}) {
		t.Errorf("span = %+v", sp)
	}
	if st := s.Stats(); st.HTTPRequests != 8 || st.FailedRequests != 7 || st.Spans != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestTreeStable(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ms := func(f float64) time.Time { return t0.Add(time.Duration(f * float64(time.Millisecond))) }
	const tid = "0102030405060708090a0b0c0d0e0f10"
	spans := []Span{
		// Deliberately out of order.
		{TraceID: tid, SpanID: "c2", ParentSpanID: "b1", Name: "db", Kind: "CLIENT", Start: ms(5), End: ms(9.5),
			StatusCode: "ERROR", StatusMessage: "timeout", Attrs: map[string]any{"db.system": "postgres", "retry": int64(1)}},
		{TraceID: tid, SpanID: "b2", ParentSpanID: "a1", Name: "cache", Kind: "CLIENT", Start: ms(1), End: ms(2.2),
			Attrs: map[string]any{"hit": true}},
		{TraceID: tid, SpanID: "a1", Name: "GET /orders", Kind: "SERVER", Start: ms(0), End: ms(12.3), StatusCode: "OK",
			Attrs: map[string]any{"http.route": "/orders", "tags": []any{"x", int64(2)}, "note": "two words"}},
		{TraceID: tid, SpanID: "b1", ParentSpanID: "a1", Name: "handler", Kind: "INTERNAL", Start: ms(3), End: ms(11), StatusCode: "UNSET"},
		{TraceID: tid, SpanID: "d1", ParentSpanID: "zz", Name: "late", Kind: "CONSUMER", Start: ms(20), End: ms(21)},
		{TraceID: "other", SpanID: "e1", Name: "not in this trace", Kind: "SERVER", Start: ms(0), End: ms(1)},
	}
	want := `SERVER GET /orders [http.route=/orders note="two words" tags=[x,2]] OK 12.3ms
  CLIENT cache [hit=true] 1.2ms
  INTERNAL handler 8.0ms
    CLIENT db [db.system=postgres retry=1] ERROR "timeout" 4.5ms
CONSUMER late 1.0ms (orphan of zz)
`
	for i := 0; i < 3; i++ {
		if got := Tree(Trace(spans, tid)); got != want {
			t.Fatalf("Tree mismatch:\n--- got ---\n%s--- want ---\n%s", got, want)
		}
	}
	if kids := Children(spans, "a1"); len(kids) != 2 || kids[0].Name != "cache" || kids[1].Name != "handler" {
		t.Errorf("Children(a1) = %v", kids)
	}
	multi := Tree(spans)
	if !strings.HasPrefix(multi, "trace "+tid+"\n  SERVER GET /orders") || !strings.Contains(multi, "trace other\n  SERVER not in this trace 1.0ms\n") {
		t.Errorf("multi-trace tree:\n%s", multi)
	}
}

func TestStartErrorsAndClose(t *testing.T) {
	if _, err := Start("", ""); err == nil {
		t.Error("Start with no addresses succeeded")
	}
	s := startSink(t, "127.0.0.1:0", "127.0.0.1:0")
	if _, err := Start(s.GRPCAddr(), ""); err == nil {
		t.Error("Start on a busy address succeeded")
	}
	// A request stuck in a long delay must not block Close.
	s.SetDelay(time.Hour)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(s.HTTPURL(), "application/x-protobuf", bytes.NewReader(nil))
		if err == nil {
			_ = resp.Body.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for s.Stats().HTTPRequests == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("request never arrived")
		case <-time.After(5 * time.Millisecond):
		}
	}
	closed := make(chan struct{})
	go func() { s.Close(); s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close blocked on a delayed request")
	}
	<-done
}
