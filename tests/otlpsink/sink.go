// Package otlpsink is a small but real OTLP trace receiver for Weft's
// end-to-end tests.
//
// Weft node proxies export OpenTelemetry spans over OTLP. To assert on what
// they actually put on the wire, tests start a Sink, point the proxies (or any
// OTLP exporter) at it, and then inspect the received spans. The sink is built
// directly on the OTLP protobuf definitions (go.opentelemetry.io/proto/otlp):
//
//   - OTLP/gRPC: opentelemetry.proto.collector.trace.v1.TraceService/Export
//     (gzip-compressed gRPC messages are accepted as well);
//   - OTLP/HTTP: POST /v1/traces with Content-Type application/x-protobuf,
//     optionally with Content-Encoding gzip. The response is a protobuf
//     ExportTraceServiceResponse; failures carry a protobuf google.rpc.Status
//     body as required by the OTLP specification. Other content types are
//     answered with 415, undecodable bodies with 400.
//
// It is neither the OpenTelemetry Collector nor a mock exporter: exporters
// talk to it exactly as they would talk to a collector. Received spans are
// flattened into the test-friendly Span type (hex IDs, string kinds and
// status codes, plain Go attribute values) and kept in arrival order.
//
// Tests can simulate a slow or failing collector with SetDelay and SetFail,
// wait for spans with WaitFor, and render a trace with Tree for readable
// assertions and failure messages.
package otlpsink

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip-compressed OTLP/gRPC
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TracesPath is the OTLP/HTTP path served by the sink.
const TracesPath = "/v1/traces"

// maxBodyBytes bounds the size of a single (decompressed) export request.
const maxBodyBytes = 64 << 20

const contentTypeProtobuf = "application/x-protobuf"

// Span is a flattened, comparison-friendly view of one received OTLP span.
type Span struct {
	TraceID      string // lower-case hex, 32 chars
	SpanID       string // lower-case hex, 16 chars
	ParentSpanID string // lower-case hex; "" for root spans
	Name         string
	// Kind is "CLIENT", "SERVER", "INTERNAL", "PRODUCER", "CONSUMER"
	// (or "UNSPECIFIED").
	Kind          string
	Start, End    time.Time
	StatusCode    string // "UNSET", "OK" or "ERROR"
	StatusMessage string
	// Attrs holds the span attributes. Values are string, int64, float64,
	// bool, []any (arrays), map[string]any (kvlists), []byte or nil.
	Attrs map[string]any
	// Resource holds the resource attributes, with the same value types.
	Resource map[string]any
	Scope    string   // instrumentation scope name
	Events   []string // event names, in order
	Protocol string   // "grpc" or "http": how the span arrived
}

// Duration is End - Start.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Stats counts what the sink has received since Start or the last Reset.
type Stats struct {
	GRPCRequests   int // OTLP/gRPC Export calls received (including failed ones)
	HTTPRequests   int // OTLP/HTTP requests received on /v1/traces (including failed ones)
	FailedRequests int // requests answered with an error (injected or malformed)
	Spans          int // spans accepted and stored
}

// Sink is an OTLP trace receiver. It is safe for concurrent use.
type Sink struct {
	coltracepb.UnimplementedTraceServiceServer

	mu       sync.Mutex
	spans    []Span
	discard  bool // count spans without keeping them
	onExport func(*coltracepb.ExportTraceServiceRequest, []Span)
	stats    Stats
	changed  chan struct{} // closed (and replaced) whenever spans change
	delay    time.Duration
	failGRPC codes.Code
	failHTTP int

	grpcLis net.Listener
	grpcSrv *grpc.Server
	httpLis net.Listener
	httpSrv *http.Server

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Start listens on the given TCP addresses (e.g. "127.0.0.1:0") and serves
// OTLP/gRPC on grpcAddr and OTLP/HTTP on httpAddr. Either address may be
// empty to skip that protocol. Call Close when done.
func Start(grpcAddr, httpAddr string) (*Sink, error) {
	if grpcAddr == "" && httpAddr == "" {
		return nil, errors.New("otlpsink: no listen address given")
	}
	var grpcLis, httpLis net.Listener
	if grpcAddr != "" {
		lis, err := net.Listen("tcp", grpcAddr)
		if err != nil {
			return nil, fmt.Errorf("otlpsink: listen grpc %s: %w", grpcAddr, err)
		}
		grpcLis = lis
	}
	if httpAddr != "" {
		lis, err := net.Listen("tcp", httpAddr)
		if err != nil {
			if grpcLis != nil {
				_ = grpcLis.Close()
			}
			return nil, fmt.Errorf("otlpsink: listen http %s: %w", httpAddr, err)
		}
		httpLis = lis
	}
	return Serve(grpcLis, httpLis)
}

// Serve is Start on listeners the caller opened (in another network
// namespace, say); either may be nil. The Sink closes them.
func Serve(grpcLis, httpLis net.Listener) (*Sink, error) {
	if grpcLis == nil && httpLis == nil {
		return nil, errors.New("otlpsink: no listener given")
	}
	s := &Sink{
		changed: make(chan struct{}),
		done:    make(chan struct{}),
	}
	if grpcLis != nil {
		s.grpcLis = grpcLis
		s.grpcSrv = grpc.NewServer(grpc.MaxRecvMsgSize(maxBodyBytes))
		coltracepb.RegisterTraceServiceServer(s.grpcSrv, s)
	}
	if httpLis != nil {
		s.httpLis = httpLis
		mux := http.NewServeMux()
		mux.HandleFunc(TracesPath, s.serveHTTP)
		s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	if s.grpcSrv != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.grpcSrv.Serve(s.grpcLis)
		}()
	}
	if s.httpSrv != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.httpSrv.Serve(s.httpLis)
		}()
	}
	return s, nil
}

// GRPCAddr returns the host:port of the OTLP/gRPC listener, or "" if gRPC
// is not served. Suitable for otlptracegrpc.WithEndpoint.
func (s *Sink) GRPCAddr() string {
	if s.grpcLis == nil {
		return ""
	}
	return s.grpcLis.Addr().String()
}

// HTTPAddr returns the host:port of the OTLP/HTTP listener, or "" if HTTP
// is not served. Suitable for otlptracehttp.WithEndpoint.
func (s *Sink) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// HTTPURL returns the full OTLP/HTTP traces URL ("http://host:port/v1/traces"),
// or "" if HTTP is not served.
func (s *Sink) HTTPURL() string {
	if s.httpLis == nil {
		return ""
	}
	return "http://" + s.HTTPAddr() + TracesPath
}

// Close stops both servers, aborting in-flight (delayed) requests. It is
// safe to call more than once. Received spans remain readable.
func (s *Sink) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.grpcSrv != nil {
			s.grpcSrv.Stop()
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		s.wg.Wait()
	})
}

// Spans returns a copy of all stored spans in arrival order.
func (s *Sink) Spans() []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneSpans(s.spans)
}

// Reset drops all stored spans and zeroes the Stats. The SetDelay and
// SetFail settings are kept.
func (s *Sink) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = nil
	s.stats = Stats{}
	s.notifyLocked()
}

// Stats returns the request and span counters.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// SetDelay makes every subsequent export request wait d before it is
// answered (and before its spans are stored), simulating a slow collector.
// Zero disables the delay. A delayed request ends early if the client gives
// up or the sink is closed.
func (s *Sink) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetFail makes every subsequent export request fail without storing spans.
// OTLP/gRPC requests return a status with the given code; OTLP/HTTP requests
// are answered with the HTTP status conventionally mapped from that code
// (see HTTPStatusFromCode), with a protobuf google.rpc.Status body.
// codes.OK disables failure injection. Use SetFailHTTP to pick a specific
// HTTP status.
func (s *Sink) SetFail(code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failGRPC = code
	s.failHTTP = HTTPStatusFromCode(code)
}

// SetFailHTTP makes subsequent OTLP/HTTP requests fail with the given HTTP
// status (e.g. 503, 429). 0 or any 2xx value disables HTTP failure
// injection. It does not affect gRPC.
func (s *Sink) SetFailHTTP(httpStatus int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if httpStatus >= 200 && httpStatus <= 299 {
		httpStatus = 0
	}
	s.failHTTP = httpStatus
}

// HTTPStatusFromCode maps a gRPC status code to the HTTP status the sink
// uses for OTLP/HTTP when SetFail is active (0 for codes.OK).
func HTTPStatusFromCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return 0
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	default: // Unknown, Internal, DataLoss
		return http.StatusInternalServerError
	}
}

// WaitFor blocks until cond returns true for the current spans (it is
// evaluated immediately and then after every change), or until ctx is done,
// in which case it returns ctx.Err(). cond receives a copy it may keep.
func (s *Sink) WaitFor(ctx context.Context, cond func([]Span) bool) error {
	for {
		s.mu.Lock()
		spans := cloneSpans(s.spans)
		ch := s.changed
		s.mu.Unlock()
		if cond(spans) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Sink) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// begin counts a request and applies the configured delay. It returns the
// failure settings that were active when the request arrived, or an error if
// the request was abandoned during the delay.
func (s *Sink) begin(ctx context.Context, protocol string) (codes.Code, int, error) {
	s.mu.Lock()
	if protocol == "grpc" {
		s.stats.GRPCRequests++
	} else {
		s.stats.HTTPRequests++
	}
	delay, failGRPC, failHTTP := s.delay, s.failGRPC, s.failHTTP
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-s.done:
			return 0, 0, errors.New("otlpsink: closed")
		}
	}
	return failGRPC, failHTTP, nil
}

func (s *Sink) countFailure() {
	s.mu.Lock()
	s.stats.FailedRequests++
	s.mu.Unlock()
}

func (s *Sink) store(req *coltracepb.ExportTraceServiceRequest, protocol string) {
	s.mu.Lock()
	discard := s.discard
	s.mu.Unlock()
	if discard {
		n := 0
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				n += len(ss.GetSpans())
			}
		}
		s.mu.Lock()
		s.stats.Spans += n
		s.mu.Unlock()
		return
	}
	spans := convert(req, protocol)
	s.mu.Lock()
	s.spans = append(s.spans, spans...)
	s.stats.Spans += len(spans)
	s.notifyLocked()
	fn := s.onExport
	s.mu.Unlock()
	if fn != nil {
		fn(req, spans)
	}
}

// OnExport sets a function called with every accepted export request and
// its spans (after they are stored): to forward them or write them out.
// It runs on the request's goroutine; set it before traffic arrives.
func (s *Sink) OnExport(fn func(req *coltracepb.ExportTraceServiceRequest, spans []Span)) {
	s.mu.Lock()
	s.onExport = fn
	s.mu.Unlock()
}

// SetDiscard makes the sink count spans without keeping them (a
// benchmark's collector).
func (s *Sink) SetDiscard(discard bool) {
	s.mu.Lock()
	s.discard = discard
	s.mu.Unlock()
}

// Export implements the OTLP/gRPC TraceService.
func (s *Sink) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	failCode, _, err := s.begin(ctx, "grpc")
	if err != nil {
		s.countFailure()
		return nil, status.FromContextError(err).Err()
	}
	if failCode != codes.OK {
		s.countFailure()
		return nil, status.Errorf(failCode, "otlpsink: injected failure (%s)", failCode)
	}
	s.store(req, "grpc")
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (s *Sink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "otlpsink: only POST is supported", http.StatusMethodNotAllowed)
		return
	}
	failCode, failHTTP, err := s.begin(r.Context(), "http")
	if err != nil {
		s.countFailure()
		return // client gone or sink closed; nobody is listening
	}
	if failHTTP != 0 {
		s.countFailure()
		msg := fmt.Sprintf("otlpsink: injected failure (HTTP %d)", failHTTP)
		if failCode == codes.OK {
			failCode = codes.Unknown
		}
		writeStatus(w, failHTTP, failCode, msg)
		return
	}

	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != contentTypeProtobuf {
		s.countFailure()
		writeStatus(w, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("otlpsink: unsupported content type %q (want %s)", r.Header.Get("Content-Type"), contentTypeProtobuf))
		return
	}

	var body io.Reader = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			s.countFailure()
			writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "otlpsink: bad gzip body: "+err.Error())
			return
		}
		defer zr.Close()
		body = io.LimitReader(zr, maxBodyBytes+1)
	default:
		s.countFailure()
		writeStatus(w, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("otlpsink: unsupported content encoding %q", enc))
		return
	}

	raw, err := io.ReadAll(body)
	if err == nil && len(raw) > maxBodyBytes {
		err = fmt.Errorf("body exceeds %d bytes", maxBodyBytes)
	}
	if err != nil {
		s.countFailure()
		writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "otlpsink: reading body: "+err.Error())
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		s.countFailure()
		writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "otlpsink: decoding ExportTraceServiceRequest: "+err.Error())
		return
	}
	s.store(&req, "http")

	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", contentTypeProtobuf)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// writeStatus answers with an OTLP/HTTP error: a protobuf google.rpc.Status.
func writeStatus(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	out, _ := proto.Marshal(status.New(code, msg).Proto())
	w.Header().Set("Content-Type", contentTypeProtobuf)
	w.WriteHeader(httpStatus)
	_, _ = w.Write(out)
}

// convert flattens an export request into Spans.
func convert(req *coltracepb.ExportTraceServiceRequest, protocol string) []Span {
	var out []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			scope := ss.GetScope().GetName()
			for _, sp := range ss.GetSpans() {
				span := Span{
					TraceID:       hexID(sp.GetTraceId()),
					SpanID:        hexID(sp.GetSpanId()),
					ParentSpanID:  hexID(sp.GetParentSpanId()),
					Name:          sp.GetName(),
					Kind:          kindString(sp.GetKind()),
					Start:         unixNano(sp.GetStartTimeUnixNano()),
					End:           unixNano(sp.GetEndTimeUnixNano()),
					StatusCode:    statusString(sp.GetStatus().GetCode()),
					StatusMessage: sp.GetStatus().GetMessage(),
					Attrs:         attrMap(sp.GetAttributes()),
					Resource:      cloneMap(res),
					Scope:         scope,
					Protocol:      protocol,
				}
				for _, ev := range sp.GetEvents() {
					span.Events = append(span.Events, ev.GetName())
				}
				out = append(out, span)
			}
		}
	}
	return out
}

func hexID(b []byte) string {
	for _, c := range b {
		if c != 0 {
			return hex.EncodeToString(b)
		}
	}
	return "" // absent or all-zero (invalid) ID
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns)).UTC()
}

func kindString(k tracepb.Span_SpanKind) string {
	switch k {
	case tracepb.Span_SPAN_KIND_CLIENT:
		return "CLIENT"
	case tracepb.Span_SPAN_KIND_SERVER:
		return "SERVER"
	case tracepb.Span_SPAN_KIND_INTERNAL:
		return "INTERNAL"
	case tracepb.Span_SPAN_KIND_PRODUCER:
		return "PRODUCER"
	case tracepb.Span_SPAN_KIND_CONSUMER:
		return "CONSUMER"
	default:
		return "UNSPECIFIED"
	}
}

func statusString(c tracepb.Status_StatusCode) string {
	switch c {
	case tracepb.Status_STATUS_CODE_OK:
		return "OK"
	case tracepb.Status_STATUS_CODE_ERROR:
		return "ERROR"
	default:
		return "UNSET"
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = anyValue(kv.GetValue())
	}
	return m
}

func anyValue(v *commonpb.AnyValue) any {
	if v == nil {
		return nil
	}
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return append([]byte(nil), x.BytesValue...)
	case *commonpb.AnyValue_ArrayValue:
		vals := x.ArrayValue.GetValues()
		arr := make([]any, len(vals))
		for i, e := range vals {
			arr[i] = anyValue(e)
		}
		return arr
	case *commonpb.AnyValue_KvlistValue:
		return attrMap(x.KvlistValue.GetValues())
	default:
		return nil
	}
}

func cloneSpans(in []Span) []Span {
	if in == nil {
		return nil
	}
	out := make([]Span, len(in))
	for i, s := range in {
		s.Attrs = cloneMap(s.Attrs)
		s.Resource = cloneMap(s.Resource)
		s.Events = append([]string(nil), s.Events...)
		out[i] = s
	}
	return out
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case []any:
		c := make([]any, len(x))
		for i, e := range x {
			c[i] = cloneValue(e)
		}
		return c
	case map[string]any:
		return cloneMap(x)
	case []byte:
		return append([]byte(nil), x...)
	default:
		return v
	}
}
