package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
	"github.com/weftmesh/weft/tests/otlpsink"
)

// TestExportToARealReceiver sends spans over OTLP/gRPC and OTLP/HTTP to
// the OTLP receiver the end-to-end tests use.
func TestExportToARealReceiver(t *testing.T) {
	sink, err := otlpsink.Start("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	for _, cfg := range []telemetry.Config{
		{Endpoint: sink.GRPCAddr(), Insecure: true, Node: "node-a", BatchTimeout: 50 * time.Millisecond},
		{Endpoint: sink.HTTPURL(), Protocol: telemetry.ProtocolHTTP, Insecure: true, Node: "node-b", Headers: map[string]string{"x-tenant": "t1"}},
		{Endpoint: sink.HTTPAddr(), Protocol: telemetry.ProtocolHTTP, Insecure: true, Node: "node-c"},
	} {
		tr, err := telemetry.New(cfg, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		if !tr.Enabled() {
			t.Fatal("not enabled with an endpoint")
		}
		_, span := tr.Start(context.Background(), "GET /"+cfg.Node, trace.WithSpanKind(trace.SpanKindClient))
		span.End()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tr.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		err = sink.WaitFor(ctx, func(spans []otlpsink.Span) bool {
			for _, s := range spans {
				if s.Name == "GET /"+cfg.Node && s.Kind == "CLIENT" && s.Resource["weft.node"] == cfg.Node && s.Resource["service.name"] == "weft-node-proxy" {
					return true
				}
			}
			return false
		})
		cancel()
		if err != nil {
			t.Errorf("%s: the span did not arrive: %v (have %v)", cfg.Endpoint, err, sink.Spans())
		}
	}
}

func TestBadCAFile(t *testing.T) {
	if _, err := telemetry.New(telemetry.Config{Endpoint: "127.0.0.1:4317", CAFile: "/nonexistent/ca.pem"}, nil); err == nil {
		t.Error("a missing CA file gave no error")
	}
}
