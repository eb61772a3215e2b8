//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/weftmesh/weft/node-proxy/netns"
	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/otlpsink"
	"github.com/weftmesh/weft/tests/sandbox"
)

// TestTracing runs a 2-node mesh whose node proxies export spans to a real
// OTLP receiver (tests/otlpsink) listening in node 0's namespace: node 0's
// proxy over OTLP/gRPC, node 1's over OTLP/HTTP. It checks the client-side
// spans of the L7 path: one CLIENT span per request with a child per
// attempt, the caller's W3C or B3 context continued, the attempt's context
// handed to the application, and a dead collector costing no request.
func TestTracing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING the end-to-end tests: they need root on Linux (network namespaces, nftables); running as uid %d", os.Geteuid())
	}
	bin := t.TempDir()
	if err := sandbox.BuildBinariesFlags(bin, []string{"-race"}, "weft-node-proxy"); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.BuildBinaries(bin, "weft-control-plane", "weft-cni", "weft-echo"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var sink *otlpsink.Sink
	const grpcPort, httpPort = 4317, 4318
	var sinkIP string
	http80 := []sandbox.ServicePort{{Name: "http", Port: 80, TargetPort: sandbox.EchoHTTPPort, AppProtocol: "http"}}
	cfg := sandbox.MeshConfig{
		Topology:   sandbox.Topology{Name: "wfttr", Nodes: 2, PodsPerNode: 2},
		BinDir:     bin,
		Namespaces: []sandbox.NamespaceSpec{{Name: "demo", Enrolled: true}},
		Pods: func(node, j int) sandbox.PodSpec {
			if node == 0 && j == 0 {
				return sandbox.PodSpec{Name: "client", ServiceAccount: "client", Labels: map[string]string{"app": "client"}}
			}
			return sandbox.PodSpec{Name: fmt.Sprintf("web-n%d-p%d", node, j), ServiceAccount: "web", Labels: map[string]string{"app": "web"}}
		},
		Services: []sandbox.ServiceSpec{{Name: "web", Selector: map[string]string{"app": "web"}, Ports: http80}},
		BeforeNodeProxies: func(ctx context.Context, m *sandbox.Mesh) error {
			n0 := m.Nodes()[0]
			sinkIP = n0.IP.String()
			ns, err := netns.Open(n0.NetNSPath)
			if err != nil {
				return err
			}
			defer ns.Close()
			gl, err := netns.Listen(ns, "tcp", fmt.Sprintf("%s:%d", sinkIP, grpcPort))
			if err != nil {
				return err
			}
			hl, err := netns.Listen(ns, "tcp", fmt.Sprintf("%s:%d", sinkIP, httpPort))
			if err != nil {
				gl.Close()
				return err
			}
			sink, err = otlpsink.Serve(gl, hl)
			return err
		},
		NodeProxyArgs: func(node int) []string {
			args := []string{"--tracing-insecure"}
			if node == 0 {
				return append(args, "--tracing-endpoint", fmt.Sprintf("%s:%d", sinkIP, grpcPort))
			}
			return append(args, "--tracing-protocol", "http/protobuf", "--tracing-endpoint", fmt.Sprintf("http://%s:%d/v1/traces", sinkIP, httpPort))
		},
	}
	m, err := cfg.Up(ctx)
	if sink != nil {
		t.Cleanup(sink.Close)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if races := raceReports(m.LogDir()); races != "" {
			t.Errorf("the race detector reported in %s", races)
		}
		if t.Failed() {
			m.KeepLogs()
			t.Logf("logs kept in %s", m.LogDir())
		}
		if err := m.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})

	// waitTrace waits for the spans of traceID: a request span with at
	// least attempts attempt children.
	waitTrace := func(t *testing.T, traceID string, attempts int) (req otlpsink.Span, children []otlpsink.Span) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := sink.WaitFor(wctx, func(spans []otlpsink.Span) bool {
			for _, s := range otlpsink.Trace(spans, traceID) {
				if _, ok := s.Attrs["weft.retry.attempt"]; !ok && s.Kind == "CLIENT" {
					if len(otlpsink.Children(spans, s.SpanID)) >= attempts {
						return true
					}
				}
			}
			return false
		})
		spans := otlpsink.Trace(sink.Spans(), traceID)
		if err != nil {
			t.Fatalf("trace %s: %v; have:\n%s", traceID, err, otlpsink.Tree(spans))
		}
		for _, s := range spans {
			if _, ok := s.Attrs["weft.retry.attempt"]; !ok && s.Kind == "CLIENT" {
				req = s
			}
		}
		return req, otlpsink.Children(spans, req.SpanID)
	}

	t.Run("W3CContinued", func(t *testing.T) {
		const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		res, err := m.Do(ctx, "client", echo.Request{URL: "http://web.demo/traced", Header: http.Header{"Traceparent": {"00-" + traceID + "-" + parent + "-01"}}})
		if err != nil || res.Status != 200 || res.Reply == nil {
			t.Fatalf("GET: %+v, %v", res, err)
		}
		req, attempts := waitTrace(t, traceID, 1)
		t.Logf("trace:\n%s", otlpsink.Tree(otlpsink.Trace(sink.Spans(), traceID)))
		if req.ParentSpanID != parent {
			t.Errorf("request span's parent %q; want the caller's %q", req.ParentSpanID, parent)
		}
		if req.Attrs["http.request.method"] != "GET" || req.Attrs["http.response.status_code"] != int64(200) ||
			req.Attrs["weft.destination.service"] != "demo/web" || req.Attrs["weft.source.workload"] != "demo/client" {
			t.Errorf("request span attributes %v", req.Attrs)
		}
		if req.Protocol != "grpc" || req.Resource["weft.node"] != m.Nodes()[0].Name {
			t.Errorf("request span arrived over %q from node %v; want grpc from %s", req.Protocol, req.Resource["weft.node"], m.Nodes()[0].Name)
		}
		if len(attempts) != 1 || attempts[0].Attrs["weft.retry.attempt"] != int64(0) {
			t.Fatalf("attempt spans %v; want one, attempt 0", attempts)
		}
		// The application sees the attempt's context, in the same trace.
		tp := res.Reply.Headers["Traceparent"]
		if len(tp) != 1 || tp[0] != "00-"+traceID+"-"+attempts[0].SpanID+"-01" {
			t.Errorf("the application got traceparent %q; want the attempt span %s of trace %s", tp, attempts[0].SpanID, traceID)
		}
	})

	t.Run("B3Continued", func(t *testing.T) {
		const traceID, parent = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
		res, err := m.Do(ctx, "client", echo.Request{URL: "http://web.demo/b3", Header: http.Header{
			"X-B3-Traceid": {traceID}, "X-B3-Spanid": {parent}, "X-B3-Sampled": {"1"}}})
		if err != nil || res.Status != 200 || res.Reply == nil {
			t.Fatalf("GET: %+v, %v", res, err)
		}
		req, attempts := waitTrace(t, traceID, 1)
		if req.ParentSpanID != parent {
			t.Errorf("request span's parent %q; want %q", req.ParentSpanID, parent)
		}
		if got := res.Reply.Headers["X-B3-Spanid"]; len(got) != 1 || got[0] != attempts[0].SpanID {
			t.Errorf("the application got X-B3-SpanId %q; want the attempt span %s", got, attempts[0].SpanID)
		}
		if got := res.Reply.Headers["X-B3-Traceid"]; len(got) != 1 || got[0] != traceID {
			t.Errorf("the application got X-B3-TraceId %q; want %s", got, traceID)
		}
	})

	t.Run("NewTraceAndRetryAttempts", func(t *testing.T) {
		if err := m.Apply("90-retry.yaml", `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: web-retry, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: web}]
  retry: {attempts: 3, retryOn: [5xx], backoff: {baseInterval: 5ms}}
  loadBalancer: {algorithm: RoundRobin}
`); err != nil {
			t.Fatal(err)
		}
		defer m.Delete("90-retry.yaml")
		// One endpoint fails everything: round robin sends every other
		// first try there, and the retry goes to the other one.
		fail := http.Header{"X-Echo-Fail-Pod": {"web-n1-p1"}}
		var res *echo.Result
		eventually(t, 20*time.Second, "a request is retried", func() error {
			var err error
			res, err = m.Do(ctx, "client", echo.Request{URL: "http://web.demo/retry", Header: fail})
			if err != nil {
				return err
			}
			if res.Status != 200 || res.Reply == nil {
				return fmt.Errorf("status %d", res.Status)
			}
			tp := res.Reply.Headers["Traceparent"]
			if len(tp) != 1 {
				return fmt.Errorf("no traceparent reached the application")
			}
			traceID := strings.Split(tp[0], "-")[1]
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_ = sink.WaitFor(wctx, func(spans []otlpsink.Span) bool { return len(otlpsink.Trace(spans, traceID)) >= 2 })
			spans := otlpsink.Trace(sink.Spans(), traceID)
			if len(spans) < 3 {
				return fmt.Errorf("trace %s has %d spans (not retried?):\n%s", traceID, len(spans), otlpsink.Tree(spans))
			}
			t.Logf("retried request:\n%s", otlpsink.Tree(spans))
			var failed, ok int
			for _, s := range spans {
				if s.Attrs["weft.retry.attempt"] == nil {
					if s.ParentSpanID != "" {
						t.Errorf("a request without a trace context got a parent: %+v", s)
					}
					continue
				}
				switch s.Attrs["http.response.status_code"] {
				case int64(503):
					failed++
				case int64(200):
					ok++
				}
			}
			if failed < 1 || ok != 1 {
				t.Errorf("attempts: %d failed, %d ok; want at least one 503 attempt and one 200", failed, ok)
			}
			return nil
		})
	})

	t.Run("CollectorDown", func(t *testing.T) {
		load := func() *echo.LoadResult {
			return mustLoad(ctx, t, m, "client", echo.LoadSpec{URL: "http://web.demo/load", Requests: 400, Concurrency: 4})
		}
		up := load()
		droppedBefore := metricSum(ctx, t, m, 0, "weft_proxy_trace_spans_dropped_total")
		sink.SetDelay(30 * time.Second)
		sink.SetFail(codes.Unavailable)
		down := load()
		t.Logf("collector up: p50 %s p99 %s; collector failing: p50 %s p99 %s, status %v, errors %d",
			up.Latency.P50, up.Latency.P99, down.Latency.P50, down.Latency.P99, down.Status, down.Errors)
		if down.Errors != 0 || down.Status[200] != down.Requests {
			t.Errorf("with the collector failing: status %v, errors %d %v; want every request to succeed", down.Status, down.Errors, down.ErrorSamples)
		}
		eventually(t, 40*time.Second, "dropped spans are counted", func() error {
			if d := metricSum(ctx, t, m, 0, "weft_proxy_trace_spans_dropped_total"); d <= droppedBefore {
				return fmt.Errorf("weft_proxy_trace_spans_dropped_total %v (was %v)", d, droppedBefore)
			}
			return nil
		})
		sink.SetDelay(0)
		sink.SetFail(codes.OK)
	})
}
