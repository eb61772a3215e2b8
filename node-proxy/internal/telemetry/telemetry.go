// Package telemetry is the node proxy's tracing: an OpenTelemetry
// TracerProvider exporting over OTLP (gRPC or HTTP/protobuf) through a
// bounded, never-blocking queue, W3C trace-context and B3 propagation, and
// the attribute names Weft puts on its spans.
//
// Tracing is off when no endpoint is configured: then Tracer.Enabled is
// false and the data path creates no span at all, so it costs nothing.
//
// A dead or slow collector never slows traffic: ending a span only offers
// it to a bounded channel (QueueSize); when the channel is full the span
// is dropped and counted in weft_proxy_trace_spans_dropped_total. One
// goroutine batches spans (BatchSize, or after BatchTimeout) and exports
// them with ExportTimeout; a failed export drops its batch and is counted
// in weft_proxy_trace_export_failures_total.
package telemetry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/credentials"
)

// Protocols of Config.Protocol.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Config configures tracing.
type Config struct {
	// Endpoint is the collector: host:port for gRPC (default port 4317),
	// host:port or a URL for HTTP (path /v1/traces by default). Empty
	// turns tracing off.
	Endpoint string
	// Protocol is ProtocolGRPC (default) or ProtocolHTTP.
	Protocol string
	// Headers are sent with every export (authentication, tenancy).
	Headers map[string]string
	// Insecure sends in plaintext; otherwise TLS, verified against CAFile
	// when set, else the system roots.
	Insecure bool
	CAFile   string
	// SamplingRatio is the parent-based ratio for traces the proxy
	// starts: an incoming sampled (or not sampled) parent is followed.
	// Default 1: a span for every hop.
	SamplingRatio float64
	// QueueSize bounds the spans waiting for export (default 4096);
	// BatchSize, BatchTimeout and ExportTimeout default to 512, 1 s and
	// 10 s.
	QueueSize     int
	BatchSize     int
	BatchTimeout  time.Duration
	ExportTimeout time.Duration
	// Resource attributes: the node's name and the proxy's version.
	Node, Version string
}

// Validate checks the configuration without connecting anywhere.
func (c *Config) Validate() error {
	switch c.Protocol {
	case "", ProtocolGRPC, ProtocolHTTP:
	default:
		return fmt.Errorf("tracing protocol %q: want %q or %q", c.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if c.SamplingRatio < 0 || c.SamplingRatio > 1 {
		return fmt.Errorf("tracing sampling ratio %v: want 0 to 1", c.SamplingRatio)
	}
	if c.QueueSize < 0 || c.BatchSize < 0 || c.BatchTimeout < 0 || c.ExportTimeout < 0 {
		return errors.New("tracing queue, batch and timeouts must not be negative")
	}
	if c.Insecure && c.CAFile != "" {
		return errors.New("tracing: a CA file and insecure are exclusive")
	}
	return nil
}

// Tracer creates the proxy's spans.
type Tracer struct {
	trace.Tracer
	tp      *sdktrace.TracerProvider
	enabled bool
	metrics *metrics
}

// New builds the tracer. With no endpoint it returns a disabled tracer
// (Enabled false) whose spans are no-ops.
func New(cfg Config, reg prometheus.Registerer) (*Tracer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if cfg.Endpoint == "" {
		return &Tracer{Tracer: noop.NewTracerProvider().Tracer("weft"), metrics: m}, nil
	}
	exp, err := newExporter(cfg)
	if err != nil {
		return nil, err
	}
	ratio := cfg.SamplingRatio
	if ratio == 0 {
		ratio = 1
	}
	proc := newQueue(exp, cfg, m)
	res := resource.NewSchemaless(
		attribute.String("service.name", "weft-node-proxy"),
		attribute.String("service.version", cfg.Version),
		attribute.String("host.name", cfg.Node),
		attribute.String(AttrNode, cfg.Node),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithSpanProcessor(proc),
		sdktrace.WithResource(res),
	)
	return &Tracer{Tracer: tp.Tracer("github.com/weftmesh/weft/node-proxy"), tp: tp, enabled: true, metrics: m}, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracer) Enabled() bool { return t != nil && t.enabled }

// Shutdown exports what is queued (within ctx) and stops.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

func newExporter(cfg Config) (sdktrace.SpanExporter, error) {
	var tlsCfg *tls.Config
	if !cfg.Insecure {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tracing CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tracing CA %s: no PEM certificate", cfg.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
	}
	ctx := context.Background()
	if cfg.Protocol == ProtocolHTTP {
		opts := []otlptracehttp.Option{otlptracehttp.WithHeaders(cfg.Headers), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
		if strings.Contains(cfg.Endpoint, "://") {
			opts = append(opts, otlptracehttp.WithEndpointURL(cfg.Endpoint))
		} else {
			opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		} else {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
		}
		return otlptracehttp.New(ctx, opts...)
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithHeaders(cfg.Headers),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	} else {
		opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsCfg)))
	}
	return otlptracegrpc.New(ctx, opts...)
}

// queue is the bounded, never-blocking span processor.
type queue struct {
	exp     sdktrace.SpanExporter
	ch      chan sdktrace.ReadOnlySpan
	batch   int
	every   time.Duration
	timeout time.Duration
	m       *metrics

	flush chan chan struct{}
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func newQueue(exp sdktrace.SpanExporter, cfg Config, m *metrics) *queue {
	q := &queue{
		exp:     exp,
		ch:      make(chan sdktrace.ReadOnlySpan, orDefault(cfg.QueueSize, 4096)),
		batch:   orDefault(cfg.BatchSize, 512),
		every:   orDefault(cfg.BatchTimeout, time.Second),
		timeout: orDefault(cfg.ExportTimeout, 10*time.Second),
		m:       m,
		flush:   make(chan chan struct{}),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go q.run()
	return q
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd offers the span to the queue; never blocks.
func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case q.ch <- s:
	default:
		q.m.dropped.Inc()
	}
}

func (q *queue) run() {
	defer close(q.done)
	t := time.NewTicker(q.every)
	defer t.Stop()
	buf := make([]sdktrace.ReadOnlySpan, 0, q.batch)
	export := func() {
		if len(buf) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
		err := q.exp.ExportSpans(ctx, buf)
		cancel()
		if err != nil {
			q.m.failures.Inc()
			q.m.dropped.Add(float64(len(buf)))
		} else {
			q.m.exported.Add(float64(len(buf)))
		}
		clear(buf)
		buf = buf[:0]
	}
	for {
		select {
		case s := <-q.ch:
			buf = append(buf, s)
			if len(buf) >= q.batch {
				export()
			}
		case <-t.C:
			export()
		case ack := <-q.flush:
			q.drain(&buf)
			export()
			close(ack)
		case <-q.stop:
			q.drain(&buf)
			export()
			return
		}
	}
}

func (q *queue) drain(buf *[]sdktrace.ReadOnlySpan) {
	for {
		select {
		case s := <-q.ch:
			*buf = append(*buf, s)
		default:
			return
		}
	}
}

func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue) Shutdown(ctx context.Context) error {
	q.once.Do(func() { close(q.stop) })
	select {
	case <-q.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return q.exp.Shutdown(ctx)
}

type metrics struct {
	dropped, exported, failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_proxy_trace_spans_dropped_total",
			Help: "Spans dropped: the export queue was full or their export failed.",
		}),
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_proxy_trace_spans_exported_total",
			Help: "Spans the collector accepted.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_proxy_trace_export_failures_total",
			Help: "Span exports that failed (the batch is dropped).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.dropped, m.exported, m.failures} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
