package telemetry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func carrier(h map[string]string) *Carrier {
	return &Carrier{Lookup: func(k string) string {
		for name, v := range h {
			if strings.EqualFold(name, k) {
				return v
			}
		}
		return ""
	}}
}

func TestExtract(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name          string
		h             map[string]string
		trace, span   string
		sampled, isB3 bool
	}{
		{"w3c", map[string]string{"traceparent": "00-" + tid + "-" + sid + "-01"}, tid, sid, true, false},
		{"w3c wins over b3", map[string]string{"traceparent": "00-" + tid + "-" + sid + "-00", "x-b3-traceid": "1111111111111111", "x-b3-spanid": "2222222222222222"}, tid, sid, false, true},
		{"b3 single", map[string]string{"b3": tid + "-" + sid + "-1"}, tid, sid, true, true},
		{"b3 single, no sampling", map[string]string{"b3": tid + "-" + sid}, tid, sid, false, true},
		{"b3 multi, 64-bit trace", map[string]string{"X-B3-TraceId": "a3ce929d0e0e4736", "X-B3-SpanId": sid, "X-B3-Sampled": "1"}, "0000000000000000a3ce929d0e0e4736", sid, true, true},
		{"b3 debug flag", map[string]string{"X-B3-TraceId": tid, "X-B3-SpanId": sid, "X-B3-Flags": "1"}, tid, sid, true, true},
		{"b3 garbage", map[string]string{"b3": "zz-yy-1"}, "", "", false, true},
		{"b3 too short", map[string]string{"b3": "abc"}, "", "", false, true},
		{"nothing", map[string]string{}, "", "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, b3 := Extract(context.Background(), carrier(tc.h))
			sc := trace.SpanContextFromContext(ctx)
			if b3 != tc.isB3 {
				t.Errorf("b3 = %v, want %v", b3, tc.isB3)
			}
			if tc.trace == "" {
				if sc.IsValid() {
					t.Errorf("got a context %v from %v", sc, tc.h)
				}
				return
			}
			if sc.TraceID().String() != tc.trace || sc.SpanID().String() != tc.span || sc.IsSampled() != tc.sampled || !sc.IsRemote() {
				t.Errorf("got %s/%s sampled %v remote %v; want %s/%s sampled %v", sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.IsRemote(), tc.trace, tc.span, tc.sampled)
			}
		})
	}
}

func TestInject(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	c := carrier(nil)
	Inject(ctx, c, true)
	got := map[string]string{}
	for _, h := range c.Out {
		got[strings.ToLower(h.Name)] = h.Value
	}
	want := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"x-b3-traceid": "4bf92f3577b34da6a3ce929d0e0e4736", "x-b3-spanid": "00f067aa0ba902b7", "x-b3-sampled": "1"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	for k := range got {
		if !IsPropagated(k) {
			t.Errorf("injected %s, which IsPropagated does not list", k)
		}
	}
	c = carrier(nil)
	Inject(ctx, c, false)
	if len(c.Out) != 1 {
		t.Errorf("without b3: %v; want only traceparent", c.Out)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{Protocol: "udp"}, {SamplingRatio: 2}, {QueueSize: -1}, {Insecure: true, CAFile: "x"}} {
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	if err := (&Config{Protocol: ProtocolHTTP, SamplingRatio: 0.5}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestDisabled(t *testing.T) {
	tr, err := New(Config{}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Error("enabled without an endpoint")
	}
	var nilTracer *Tracer
	if nilTracer.Enabled() || nilTracer.Shutdown(context.Background()) != nil || tr.Shutdown(context.Background()) != nil {
		t.Error("a disabled tracer misbehaves")
	}
}

// blockingExporter holds every export until released (a stuck collector).
type blockingExporter struct {
	mu       sync.Mutex
	release  chan struct{}
	fail     bool
	exported int
}

func (e *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	select {
	case <-e.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail {
		return errors.New("collector says no")
	}
	e.exported += len(spans)
	return nil
}

func (e *blockingExporter) Shutdown(context.Context) error { return nil }

func TestQueueNeverBlocks(t *testing.T) {
	m, _ := newMetrics(nil)
	exp := &blockingExporter{release: make(chan struct{})}
	q := newQueue(exp, Config{QueueSize: 10, BatchSize: 5, BatchTimeout: time.Hour, ExportTimeout: time.Hour}, m)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	tr := tp.Tracer("test")
	// The exporter is stuck: 1 batch of 5 is in its hands, 10 wait in
	// the queue, the rest are dropped, and ending spans never waits.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_, s := tr.Start(context.Background(), "s")
			s.End()
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("ending spans blocked on a stuck exporter")
	}
	if d := value(m.dropped); d < 100-15 {
		t.Errorf("dropped %v spans; want at least 85", d)
	}
	close(exp.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	exp.mu.Lock()
	exported := exp.exported
	exp.mu.Unlock()
	if exported+int(value(m.dropped)) != 100 || float64(exported) != value(m.exported) {
		t.Errorf("exported %d (metric %v), dropped %v; want them to add up to 100", exported, value(m.exported), value(m.dropped))
	}
	// A failing export drops its batch and counts a failure.
	exp.mu.Lock()
	exp.fail = true
	exp.mu.Unlock()
	before := value(m.dropped)
	for range 3 {
		_, s := tr.Start(context.Background(), "s")
		s.End()
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if value(m.failures) < 1 || value(m.dropped) != before+3 {
		t.Errorf("after a failed export: failures %v, dropped %v (was %v)", value(m.failures), value(m.dropped), before)
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
