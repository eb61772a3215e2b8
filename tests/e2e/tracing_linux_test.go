//go:build linux

package e2e

import (
	"context"
	"encoding/json"
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
	var sink *otlpsink.Sink
	const grpcPort, httpPort = 4317, 4318
	accessLog := t.TempDir() + "/access.log" // node 0's
	var sinkIP string
	http80 := []sandbox.ServicePort{{Name: "http", Port: 80, TargetPort: sandbox.EchoHTTPPort, AppProtocol: "http"}}
	cfg := func(bin string) sandbox.MeshConfig {
		return sandbox.MeshConfig{
			Topology:   sandbox.Topology{Name: "wfttr", Nodes: 2, PodsPerNode: 2},
			BinDir:     bin,
			Namespaces: []sandbox.NamespaceSpec{{Name: "demo", Enrolled: true}},
			Pods: func(node, j int) sandbox.PodSpec {
				if node == 0 && j == 0 {
					return sandbox.PodSpec{Name: "client", ServiceAccount: "client", Labels: map[string]string{"app": "client"}}
				}
				return sandbox.PodSpec{Name: fmt.Sprintf("web-n%d-p%d", node, j), ServiceAccount: "web", Labels: map[string]string{"app": "web"}}
			},
			Services: []sandbox.ServiceSpec{
				{Name: "web", Selector: map[string]string{"app": "web"}, Ports: append(http80, sandbox.ServicePort{Name: "tcp-echo", Port: sandbox.EchoTCPPort})},
				// b is on node 1, c on node 0: client -> b -> c crosses nodes
				// twice, four proxy hops.
				{Name: "b", Selector: map[string]string{"pod": "web-n1-p0"}, Ports: http80},
				{Name: "c", Selector: map[string]string{"pod": "web-n0-p1"}, Ports: http80},
				{Name: "g", Selector: map[string]string{"pod": "web-n1-p0"}, Ports: []sandbox.ServicePort{
					{Name: "grpc", Port: sandbox.EchoGRPCPort, AppProtocol: "grpc"}}},
			},
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
				if err == nil {
					t.Cleanup(sink.Close) // after the mesh is down
				}
				return err
			},
			NodeProxyArgs: func(node int) []string {
				args := []string{"--tracing-insecure"}
				if node == 0 {
					return append(args, "--tracing-endpoint", fmt.Sprintf("%s:%d", sinkIP, grpcPort), "--access-log", accessLog)
				}
				return append(args, "--tracing-protocol", "http/protobuf", "--tracing-endpoint", fmt.Sprintf("http://%s:%d/v1/traces", sinkIP, httpPort))
			},
		}
	}
	ctx, m := upMesh(t, cfg)

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
		children = otlpsink.Children(spans, req.SpanID)
		// And the destination's SERVER span under the last attempt.
		if len(children) > 0 {
			last := children[len(children)-1].SpanID
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			if err := sink.WaitFor(wctx, func(spans []otlpsink.Span) bool { return len(otlpsink.Children(spans, last)) > 0 }); err != nil {
				t.Fatalf("no SERVER span under attempt %s: %v", last, err)
			}
		}
		return req, children
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
		// The destination's SERVER span is the attempt's child, and the
		// application sees the SERVER span's context.
		servers := otlpsink.Children(sink.Spans(), attempts[0].SpanID)
		if len(servers) != 1 || servers[0].Kind != "SERVER" || servers[0].Resource["weft.node"] != m.Nodes()[1].Name && servers[0].Resource["weft.node"] != m.Nodes()[0].Name {
			t.Fatalf("the attempt's children %v; want one SERVER span", servers)
		}
		tp := res.Reply.Headers["Traceparent"]
		if len(tp) != 1 || tp[0] != "00-"+traceID+"-"+servers[0].SpanID+"-01" {
			t.Errorf("the application got traceparent %q; want the SERVER span %s of trace %s", tp, servers[0].SpanID, traceID)
		}
	})

	t.Run("FourHops", func(t *testing.T) {
		// client -> b (node 1), and b, as an instrumented application,
		// calls c (node 0) with the trace context it received.
		res, err := m.Do(ctx, "client", echo.Request{URL: "http://b.demo/first", Header: http.Header{"X-Echo-Call": {"http://c.demo/second"}}})
		if err != nil || res.Status != 200 || res.Reply == nil || res.Reply.Called == nil || res.Reply.Called.Status != 200 {
			t.Fatalf("client -> b -> c: %+v, %v", res, err)
		}
		traceID := strings.Split(res.Reply.Headers["Traceparent"][0], "-")[1]
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := sink.WaitFor(wctx, func(spans []otlpsink.Span) bool { return len(otlpsink.Trace(spans, traceID)) >= 6 }); err != nil {
			t.Fatalf("trace %s: %v:\n%s", traceID, err, otlpsink.Tree(otlpsink.Trace(sink.Spans(), traceID)))
		}
		spans := otlpsink.Trace(sink.Spans(), traceID)
		t.Logf("client -> b -> c:\n%s", otlpsink.Tree(spans))
		// The chain, root first: request (n0), attempt (n0), SERVER (n1,
		// b), request (n1), attempt (n1), SERVER (n0, c).
		byParent := map[string][]otlpsink.Span{}
		var root []otlpsink.Span
		for _, s := range spans {
			if s.ParentSpanID == "" {
				root = append(root, s)
			}
			byParent[s.ParentSpanID] = append(byParent[s.ParentSpanID], s)
		}
		want := []struct {
			kind, node, workload string
			attempt              bool
		}{
			{"CLIENT", m.Nodes()[0].Name, "", false},
			{"CLIENT", m.Nodes()[0].Name, "", true},
			{"SERVER", m.Nodes()[1].Name, "demo/web-n1-p0", false},
			{"CLIENT", m.Nodes()[1].Name, "", false},
			{"CLIENT", m.Nodes()[1].Name, "", true},
			{"SERVER", m.Nodes()[0].Name, "demo/web-n0-p1", false},
		}
		if len(root) != 1 || len(spans) != len(want) {
			t.Fatalf("%d spans, %d roots; want %d spans in one chain", len(spans), len(root), len(want))
		}
		cur := root[0]
		for i, w := range want {
			_, isAttempt := cur.Attrs["weft.retry.attempt"]
			if cur.Kind != w.kind || cur.Resource["weft.node"] != w.node || isAttempt != w.attempt ||
				(w.workload != "" && cur.Attrs["weft.destination.workload"] != w.workload) {
				t.Errorf("hop %d: %s on %v (attempt %v, workload %v); want %s on %s (attempt %v, workload %q)",
					i, cur.Kind, cur.Resource["weft.node"], isAttempt, cur.Attrs["weft.destination.workload"], w.kind, w.node, w.attempt, w.workload)
			}
			if cur.Attrs["http.response.status_code"] != int64(200) {
				t.Errorf("hop %d: status %v", i, cur.Attrs["http.response.status_code"])
			}
			if w.kind == "SERVER" && cur.Attrs["weft.source.identity"] == "" {
				t.Errorf("hop %d: SERVER span without the caller's identity", i)
			}
			if ca, _ := cur.Attrs["client.address"].(string); !w.attempt && !strings.HasPrefix(ca, "10.200.") {
				t.Errorf("hop %d: client.address %v; want the calling pod's address", i, cur.Attrs["client.address"])
			}
			if i == len(want)-1 {
				break
			}
			next := byParent[cur.SpanID]
			if len(next) != 1 {
				t.Fatalf("hop %d (%s %s) has %d children; want 1", i, cur.Kind, cur.SpanID, len(next))
			}
			cur = next[0]
		}
		protos := map[string]bool{}
		for _, s := range spans {
			protos[s.Protocol] = true
		}
		if !protos["grpc"] || !protos["http"] {
			t.Errorf("spans arrived over %v; want both OTLP/gRPC (node 0) and OTLP/HTTP (node 1)", protos)
		}
	})

	t.Run("GRPCSpans", func(t *testing.T) {
		// A gRPC call with a W3C parent: the source's request and attempt
		// spans on the HTTP/2 path and the destination's SERVER span.
		const traceID, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
		res := mustLoad(ctx, t, m, "client", echo.LoadSpec{URL: fmt.Sprintf("http://g.demo:%d", sandbox.EchoGRPCPort), GRPC: true, Requests: 1,
			Header: http.Header{"Traceparent": {"00-" + traceID + "-" + parent + "-01"}}})
		if res.GRPCCodes["OK"] != 1 {
			t.Fatalf("gRPC call: codes %v, errors %v", res.GRPCCodes, res.ErrorSamples)
		}
		req, attempts := waitTrace(t, traceID, 1)
		spans := otlpsink.Trace(sink.Spans(), traceID)
		t.Logf("gRPC call:\n%s", otlpsink.Tree(spans))
		if req.ParentSpanID != parent || req.Attrs["network.protocol.version"] != "2" || req.Attrs["url.path"] != "/weft.echo.v1.Echo/Echo" ||
			req.Attrs["rpc.service"] != "weft.echo.v1.Echo" || req.Attrs["rpc.method"] != "Echo" || req.Attrs["rpc.grpc.status_code"] != int64(0) {
			t.Errorf("request span: parent %s, attrs %v", req.ParentSpanID, req.Attrs)
		}
		servers := otlpsink.Children(spans, attempts[0].SpanID)
		if len(servers) != 1 || servers[0].Kind != "SERVER" || servers[0].Attrs["weft.destination.workload"] != "demo/web-n1-p0" ||
			servers[0].Attrs["http.response.status_code"] != int64(200) {
			t.Errorf("SERVER spans under the attempt: %+v", servers)
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
		servers := otlpsink.Children(sink.Spans(), attempts[0].SpanID)
		if len(servers) != 1 {
			t.Fatalf("the attempt's children %v; want one SERVER span", servers)
		}
		if got := res.Reply.Headers["X-B3-Spanid"]; len(got) != 1 || got[0] != servers[0].SpanID {
			t.Errorf("the application got X-B3-SpanId %q; want the SERVER span %s", got, servers[0].SpanID)
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
			wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			attemptsOf := func(spans []otlpsink.Span) int {
				n := 0
				for _, s := range spans {
					if s.Attrs["weft.retry.attempt"] != nil {
						n++
					}
				}
				return n
			}
			_ = sink.WaitFor(wctx, func(spans []otlpsink.Span) bool { return attemptsOf(otlpsink.Trace(spans, traceID)) >= 2 })
			spans := otlpsink.Trace(sink.Spans(), traceID)
			if attemptsOf(spans) < 2 {
				return fmt.Errorf("trace %s has %d attempts (not retried?):\n%s", traceID, attemptsOf(spans), otlpsink.Tree(spans))
			}
			t.Logf("retried request:\n%s", otlpsink.Tree(spans))
			var failed, ok int
			for _, s := range spans {
				if s.Attrs["weft.retry.attempt"] == nil {
					if s.Kind == "CLIENT" && s.ParentSpanID != "" {
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

	t.Run("MetricsMatchRequests", func(t *testing.T) {
		labels := []string{`source_workload="client"`, `source_namespace="demo"`, `destination_service="demo/web"`,
			`destination_backend="demo/web"`, `destination_namespace="demo"`, `response_code="200"`}
		before := metricSum(ctx, t, m, 0, "weft_requests_total", labels...)
		beforeCount := metricSum(ctx, t, m, 0, "weft_request_duration_seconds_count", labels...)
		before503 := metricSum(ctx, t, m, 0, "weft_requests_total", `destination_service="demo/web"`, `response_code="503"`)
		res := mustLoad(ctx, t, m, "client", echo.LoadSpec{URL: "http://web.demo/metrics", Requests: 120, Concurrency: 4})
		fail := mustLoad(ctx, t, m, "client", echo.LoadSpec{URL: "http://web.demo/metrics?status=503", Requests: 30, Concurrency: 2})
		if res.Status[200] != 120 || fail.Status[503] != 30 {
			t.Fatalf("loads: %v, %v", res.Status, fail.Status)
		}
		got := metricSum(ctx, t, m, 0, "weft_requests_total", labels...) - before
		gotCount := metricSum(ctx, t, m, 0, "weft_request_duration_seconds_count", labels...) - beforeCount
		got503 := metricSum(ctx, t, m, 0, "weft_requests_total", `destination_service="demo/web"`, `response_code="503"`) - before503
		t.Logf("weft_requests_total +%.0f (200), +%.0f (503); duration histogram count +%.0f", got, got503, gotCount)
		if got != 120 || gotCount != 120 || got503 != 30 {
			t.Errorf("metrics counted %v 200s (histogram %v) and %v 503s; want 120, 120 and 30", got, gotCount, got503)
		}
		// The access log has the requests, with their trace IDs.
		eventually(t, 10*time.Second, "the access log has the requests", func() error {
			b, err := os.ReadFile(accessLog)
			if err != nil {
				return err
			}
			n := 0
			for _, line := range strings.Split(string(b), "\n") {
				var e struct {
					Path    string `json:"path"`
					Status  int    `json:"status"`
					TraceID string `json:"trace_id"`
					Pod     string `json:"upstream_pod"`
				}
				if json.Unmarshal([]byte(line), &e) == nil && e.Path == "/metrics?status=503" && e.Status == 503 && len(e.TraceID) == 32 && e.Pod != "" {
					n++
				}
			}
			if n != 30 {
				return fmt.Errorf("%d access log lines for the 503 requests; want 30", n)
			}
			return nil
		})
	})

	t.Run("TCPConnectionSpans", func(t *testing.T) {
		// A Service port without an HTTP protocol: one span per
		// connection on each side, the server's the client's child.
		sink.Reset()
		vip := m.ServiceIP("web.demo")
		got, err := tcpEcho(ctx, m, "client", fmt.Sprintf("%s:%d", vip, sandbox.EchoTCPPort), "tcp span")
		if err != nil || !strings.Contains(got, "tcp span") {
			t.Fatalf("TCP echo: %q, %v", got, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		var client, server otlpsink.Span
		err = sink.WaitFor(wctx, func(spans []otlpsink.Span) bool {
			for _, s := range spans {
				if strings.HasPrefix(s.Name, "tcp ") && s.Kind == "CLIENT" {
					for _, c := range otlpsink.Children(spans, s.SpanID) {
						if c.Kind == "SERVER" {
							client, server = s, c
							return true
						}
					}
				}
			}
			return false
		})
		if err != nil {
			t.Fatalf("no CLIENT tcp span with a SERVER child: %v\n%s", err, otlpsink.Tree(sink.Spans()))
		}
		t.Logf("TCP connection:\n%s", otlpsink.Tree(otlpsink.Trace(sink.Spans(), client.TraceID)))
		if client.Attrs["weft.bytes_sent"] != int64(len("tcp span\n")) || server.Attrs["weft.source.identity"] != "spiffe://cluster.local/ns/demo/sa/client" {
			t.Errorf("client attrs %v, server attrs %v", client.Attrs, server.Attrs)
		}
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
