//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/sandbox"
)

// The L7 topology: 2 nodes, 3 pods each.
//
//	node 0: client (demo), web-v1-n0, web-v2-n0
//	node 1: web-v1-n1, web-v2-n1, outsider (namespace other, enrolled)
//
// The web pods have app=web and version=v1 or v2. Service web selects all
// four, web-v1 and web-v2 one version; every per-test Service (flaky,
// budget, ...) selects the two v1 pods, so that a TrafficPolicy on one does
// not touch the others' clusters.
const l7Client = "client"

var l7PerTest = []string{"flaky", "budget", "faulty", "slow", "pertry", "outlier", "authz"}

func l7MeshConfig(bin string) sandbox.MeshConfig {
	http80 := []sandbox.ServicePort{{Name: "http", Port: 80, TargetPort: sandbox.EchoHTTPPort, AppProtocol: "http"}}
	v1 := map[string]string{"app": "web", "version": "v1"}
	svcs := []sandbox.ServiceSpec{
		{Name: "web", Selector: map[string]string{"app": "web"}, Ports: http80},
		{Name: "web-v1", Selector: v1, Ports: http80},
		{Name: "web-v2", Selector: map[string]string{"app": "web", "version": "v2"}, Ports: http80},
		{Name: "echogrpc", Selector: v1, Ports: []sandbox.ServicePort{
			{Name: "grpc", Port: sandbox.EchoGRPCPort, TargetPort: sandbox.EchoGRPCPort, AppProtocol: "grpc"}}},
	}
	for _, n := range l7PerTest {
		svcs = append(svcs, sandbox.ServiceSpec{Name: n, Selector: v1, Ports: http80})
	}
	return sandbox.MeshConfig{
		Topology: sandbox.Topology{Name: "wftl7", Nodes: 2, PodsPerNode: 3},
		BinDir:   bin,
		Namespaces: []sandbox.NamespaceSpec{
			{Name: "demo", Enrolled: true},
			{Name: "other", Enrolled: true},
		},
		Pods: func(node, j int) sandbox.PodSpec {
			switch {
			case node == 0 && j == 0:
				return sandbox.PodSpec{Name: l7Client, ServiceAccount: "client", Labels: map[string]string{"app": "client"}}
			case node == 1 && j == 2:
				return sandbox.PodSpec{Namespace: "other", Name: "outsider", ServiceAccount: "outsider", Labels: map[string]string{"app": "outsider"}}
			}
			v := "v1"
			if (node == 0 && j == 2) || (node == 1 && j == 1) {
				v = "v2"
			}
			return sandbox.PodSpec{Name: fmt.Sprintf("web-%s-n%d", v, node), ServiceAccount: "web",
				Labels: map[string]string{"app": "web", "version": v}}
		},
		Services: svcs,
	}
}

func TestL7(t *testing.T) {
	ctx, m := upMesh(t, l7MeshConfig)
	// Every Service answers before the tests start.
	eventually(t, 30*time.Second, "every Service answers", func() error {
		for _, s := range append([]string{"web", "web-v1", "web-v2"}, l7PerTest...) {
			res, err := m.Get(ctx, l7Client, "http://"+s+".demo/ready")
			if err != nil || res.Status != 200 || res.Reply == nil {
				return fmt.Errorf("GET %s: %+v, %v", s, res, err)
			}
		}
		return nil
	})

	// The authorization policy covers the v1 pods, every Service's: it
	// comes last.
	tests := []struct {
		name string
		fn   func(context.Context, *testing.T, *sandbox.Mesh)
	}{
		{"HTTP1Wire", testHTTP1Wire},
		{"Split90_10", testSplit90_10},
		{"WeightShiftNoFailures", testWeightShift},
		{"Retries", testRetries},
		{"BudgetCapsRetries", testBudgetCapsRetries},
		{"Abort25", testAbort25},
		{"AbortRetried", testAbortRetried},
		{"Redirect", testRedirect},
		{"URLRewrite", testURLRewrite},
		{"BackendHeaders", testBackendHeaders},
		{"Delay50", testDelay50},
		{"GRPCAbort", testGRPCAbort},
		{"PerTryTimeout", testPerTryTimeout},
		{"HeaderCanary", testHeaderCanary},
		{"NoMatchingRoute404", testNoMatchingRoute404},
		{"ConsumerRoute", testConsumerRoute},
		{"OutlierEjection", testOutlierEjection},
		{"L7Authorization", testL7Authorization},
		{"GRPCAuthorization", testGRPCAuthorization},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tc.fn(ctx, t, m)
			t.Logf("%s took %s", tc.name, time.Since(start).Round(time.Millisecond))
		})
	}
}

const webURL = "http://web.demo/"

// webRoute is an HTTPRoute on Service web splitting between web-v1 and
// web-v2.
func webRoute(w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-split, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: web, port: 80}]
  rules:
  - backendRefs:
    - {name: web-v1, port: 80, weight: %d}
    - {name: web-v2, port: 80, weight: %d}
`, w1, w2)
}

const routeFile = "70-l7-web-route.yaml"

// waitAll waits until n requests to url all land on version v.
func waitAll(ctx context.Context, t *testing.T, m *sandbox.Mesh, url, v string, n int, hdr http.Header) {
	t.Helper()
	eventually(t, 20*time.Second, fmt.Sprintf("%d requests to %s all on %s", n, url, v), func() error {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: url, Requests: n, Concurrency: 4, Header: hdr})
		if err != nil {
			return err
		}
		return onlyVersion(res, v)
	})
}

// removeRoute deletes the web route and waits until web answers from both
// versions again.
func removeRoute(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	t.Helper()
	if err := m.Delete(routeFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "web answers from both versions without a route", func() error {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: webURL + "noroute", Requests: 40, Concurrency: 4})
		if err != nil {
			return err
		}
		v1, v2, _ := versions(res)
		if res.Status[200] != res.Requests || v1 == 0 || v2 == 0 {
			return fmt.Errorf("status %v, pods %v", res.Status, res.Pods)
		}
		return nil
	})
}

func testSplit90_10(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, webRoute(0, 100)); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	waitAll(ctx, t, m, webURL, "v2", 20, nil)
	if err := m.Apply(routeFile, webRoute(90, 10)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a v1 pod answers after the 90/10 split", func() error {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: webURL, Requests: 10, Concurrency: 2})
		if err != nil {
			return err
		}
		if v1, _, _ := versions(res); v1 == 0 {
			return fmt.Errorf("pods %v", res.Pods)
		}
		return nil
	})
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: webURL + "split", Requests: 2000, Concurrency: 8})
	v1, v2, other := versions(res)
	t.Logf("90/10 split: %d requests in %s, status %v, errors %d, v1 %d, v2 %d (%.2f%%), pods %v, p50 %s p99 %s",
		res.Requests, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors, v1, v2, share(v2, v1+v2), res.Pods, res.Latency.P50, res.Latency.P99)
	if res.Errors != 0 || res.Status[200] != res.Requests || other != 0 {
		t.Errorf("want every request 200 from a web pod: errors %d %v, status %v, pods %v", res.Errors, res.ErrorSamples, res.Status, res.Pods)
	}
	if s := share(v2, v1+v2); s < 7 || s > 13 {
		t.Errorf("v2 got %.2f%% of the requests; want 10 ± 3", s)
	}
	for _, p := range []string{"web-v1-n0", "web-v1-n1", "web-v2-n0", "web-v2-n1"} {
		if res.Pods[p] == 0 {
			t.Errorf("pod %s got no request; want both pods of each version used", p)
		}
	}
}

func testWeightShift(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, webRoute(100, 0)); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	waitAll(ctx, t, m, webURL, "v1", 20, nil)

	type loadOut struct {
		res *echo.LoadResult
		err error
	}
	done := make(chan loadOut, 1)
	start := time.Now()
	go func() {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: webURL + "shift", Duration: 8 * time.Second, Rate: 150, Concurrency: 8})
		done <- loadOut{res, err}
	}()
	// The scenario: 100/0 for ~2s, 50/50 until ~4.5s, then 0/100.
	time.Sleep(time.Until(start.Add(2 * time.Second)))
	if err := m.Apply(routeFile, webRoute(50, 50)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "v2 answers after 50/50", func() error {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: webURL, Requests: 10, Concurrency: 2})
		if err != nil {
			return err
		}
		if _, v2, _ := versions(res); v2 == 0 {
			return fmt.Errorf("pods %v", res.Pods)
		}
		return nil
	})
	t.Logf("50/50 observed %s after the start", time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Until(start.Add(4500 * time.Millisecond)))
	if err := m.Apply(routeFile, webRoute(0, 100)); err != nil {
		t.Fatal(err)
	}
	waitAll(ctx, t, m, webURL, "v2", 10, nil)
	t.Logf("0/100 observed %s after the start", time.Since(start).Round(time.Millisecond))
	out := <-done
	if out.err != nil {
		t.Fatalf("load: %v", out.err)
	}
	res := out.res
	v1, v2, other := versions(res)
	t.Logf("weight shift: %d requests in %s, status %v, errors %d %v, v1 %d, v2 %d, p99 %s max %s",
		res.Requests, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors, res.ErrorSamples, v1, v2, res.Latency.P99, res.Latency.Max)
	if res.Errors != 0 || res.Status[200] != res.Requests || other != 0 {
		t.Errorf("want zero errors and every status 200: errors %d %v, status %v, pods %v", res.Errors, res.ErrorSamples, res.Status, res.Pods)
	}
	if v1 == 0 || v2 == 0 {
		t.Errorf("want both versions seen during the shift: v1 %d, v2 %d", v1, v2)
	}
	if res.Requests < 1000 {
		t.Errorf("only %d requests in 8s at 150/s; want about 1200", res.Requests)
	}
	final := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: webURL + "final", Requests: 100, Concurrency: 4})
	if err := onlyVersion(final, "v2"); err != nil {
		t.Errorf("final state: %v", err)
	}
}

func testRetries(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "71-l7-flaky.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: flaky, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: flaky}]
  retry:
    attempts: 3
    retryOn: [5xx]
    backoff: {baseInterval: 5ms, maxInterval: 50ms}
    budget: {percent: 100, minRetriesPerSecond: 1000}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	hdr := http.Header{"X-Echo-Fail-Percent": {"50"}}
	eventually(t, 20*time.Second, "retries happen on flaky", func() error {
		before := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`)
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: "http://flaky.demo/probe", Requests: 10, Concurrency: 2, Header: hdr})
		if err != nil {
			return err
		}
		if after := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`); after <= before {
			return fmt.Errorf("no retry counted (status %v)", res.Status)
		}
		return nil
	})
	before := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`)
	exhaustedBefore := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="budget_exhausted"`)
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://flaky.demo/flaky", Requests: 1000, Concurrency: 8, Header: hdr})
	retried := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`) - before
	exhausted := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="budget_exhausted"`) - exhaustedBefore
	ok := share(res.Status[200], res.Requests)
	t.Logf("retries: %d requests in %s, status %v, errors %d, success %.2f%%, retried +%.0f (%.3f per request), budget_exhausted +%.0f",
		res.Requests, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors, ok, retried, retried/float64(res.Requests), exhausted)
	// Each try fails with probability 1/2 and attempts: 3 means 3 retries
	// after the first try, so a request fails only when all 4 tries do:
	// 1/16. Success is 93.75% (σ ≈ 0.77 points over 1,000), against 50%
	// without retries and 87.5% if attempts counted the first try.
	if res.Errors != 0 || res.Status[200]+res.Status[503] != res.Requests {
		t.Errorf("want only 200s and 503s: errors %d %v, status %v", res.Errors, res.ErrorSamples, res.Status)
	}
	if ok < 91 || ok > 96.5 {
		t.Errorf("success %.2f%%; want 93.75 ± 2.75 (1 - 0.5^4)", ok)
	}
	// Expected retries per request: 0.5 + 0.25 + 0.125 = 0.875.
	if r := retried / float64(res.Requests); r < 0.75 || r > 1.0 {
		t.Errorf("retried %.0f times for %d requests (%.3f each); want about 0.875 each", retried, res.Requests, r)
	}
	if exhausted != 0 {
		t.Errorf("budget_exhausted rose by %.0f with a 100%% budget and a 1000/s reserve", exhausted)
	}

	// One of the two endpoints answers 503 to everything, so half the
	// first tries fail; a retry goes to the other endpoint, so success
	// stays at or above 99%.
	fail := http.Header{"X-Echo-Fail-Pod": {"web-v1-n1"}}
	res = mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://flaky.demo/one-pod-down", Requests: 1000, Concurrency: 8, Header: fail})
	ok = share(res.Status[200], res.Requests)
	t.Logf("retries with one endpoint failing: %d requests, status %v, errors %d, success %.2f%%, pods %v", res.Requests, res.Status, res.Errors, ok, res.Pods)
	if ok < 99 {
		t.Errorf("success %.2f%% with one of two endpoints failing and 3 retries; want >= 99%%", ok)
	}
}

func testBudgetCapsRetries(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "72-l7-budget.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: budget, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: budget}]
  retry:
    attempts: 3
    retryOn: [5xx]
    budget: {percent: 20, minRetriesPerSecond: 1}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	hdr := http.Header{"X-Echo-Status": {"503"}}
	eventually(t, 20*time.Second, "retries happen on budget", func() error {
		before := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`)
		res, err := m.Do(ctx, l7Client, echo.Request{URL: "http://budget.demo/probe", Header: hdr})
		if err != nil {
			return err
		}
		if after := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`); after <= before {
			return fmt.Errorf("no retry counted (status %d)", res.Status)
		}
		return nil
	})
	before := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`)
	exhaustedBefore := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="budget_exhausted"`)
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://budget.demo/fail", Requests: 600, Rate: 100, Concurrency: 8, Header: hdr})
	retried := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`) - before
	exhausted := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="budget_exhausted"`) - exhaustedBefore
	secs := res.Elapsed.Seconds()
	// The budget: 20% of the requests of the last 10s window plus a
	// reserve of minRetriesPerSecond × 10s = 10 per window. The run fits
	// in one window, so at most 0.2 × N + 10 (+ the probes' share).
	bound := 0.2*float64(res.Requests) + 1*max(secs, 10) + 5
	t.Logf("budget: %d requests in %.1fs, status %v, errors %d, retried +%.0f (bound %.0f, 3×N = %d), budget_exhausted +%.0f",
		res.Requests, secs, res.Status, res.Errors, retried, bound, 3*res.Requests, exhausted)
	if res.Errors != 0 || res.Status[503] != res.Requests {
		t.Errorf("want every request answered 503: errors %d %v, status %v", res.Errors, res.ErrorSamples, res.Status)
	}
	if retried > bound {
		t.Errorf("retried %.0f times; the budget allows at most %.0f", retried, bound)
	}
	if retried < 0.1*float64(res.Requests) {
		t.Errorf("retried only %.0f times; the budget allows about %.0f", retried, 0.2*float64(res.Requests)+10)
	}
	if exhausted < float64(res.Requests)/2 {
		t.Errorf("budget_exhausted rose by %.0f; want most of the %d requests refused a retry", exhausted, res.Requests)
	}
}

func testAbort25(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "73-l7-faulty.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: faulty, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: faulty}]
  faults:
    abort: {httpStatus: 503, percentage: 25}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	var aborted *echo.Result
	eventually(t, 20*time.Second, "a fault abort answers on faulty", func() error {
		for range 20 {
			res, err := m.Do(ctx, l7Client, echo.Request{URL: "http://faulty.demo/probe"})
			if err != nil {
				return err
			}
			if res.Status == 503 {
				aborted = res
				return nil
			}
		}
		return fmt.Errorf("no 503 in 20 requests")
	})
	if got := aborted.Headers.Get("X-Weft-Local-Reply"); got != "fault_abort" || aborted.Reply != nil {
		t.Errorf("the 503 has X-Weft-Local-Reply %q and reply %+v; want fault_abort and no weft-echo reply", got, aborted.Reply)
	}
	faultsBefore := metricSum(ctx, t, m, 0, "weft_proxy_faults_injected_total", `kind="abort"`)
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://faulty.demo/abort", Requests: 2000, Concurrency: 8})
	faults := metricSum(ctx, t, m, 0, "weft_proxy_faults_injected_total", `kind="abort"`) - faultsBefore
	s := share(res.Status[503], res.Requests)
	t.Logf("abort 25%%: %d requests, status %v, errors %d, 503 share %.2f%%, faults_injected{abort} +%.0f", res.Requests, res.Status, res.Errors, s, faults)
	if res.Errors != 0 || res.Status[200]+res.Status[503] != res.Requests {
		t.Errorf("want only 200s and 503s: errors %d %v, status %v", res.Errors, res.ErrorSamples, res.Status)
	}
	if s < 21 || s > 29 {
		t.Errorf("503 share %.2f%%; want 25 ± 4", s)
	}
	if int(faults) != res.Status[503] {
		t.Errorf("faults_injected{abort} rose by %.0f; want %d, the 503s", faults, res.Status[503])
	}
}

// testAbortRetried: faults are drawn per attempt, so a retry policy that
// retries 5xx hides an injected 50% abort: a request fails only when all
// six attempts are aborted (1/64). Every injected abort is either retried
// or answered, exactly.
func testAbortRetried(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "73-l7-faulty.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: faulty, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: faulty}]
  faults:
    abort: {httpStatus: 503, percentage: 50}
  retry: {attempts: 5, retryOn: [5xx], budget: {percent: 100, minRetriesPerSecond: 1000}}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	eventually(t, 20*time.Second, "retries hide the aborts on faulty", func() error {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: "http://faulty.demo/probe", Requests: 50, Concurrency: 5})
		if err != nil {
			return err
		}
		if res.Status[200] < 45 {
			return fmt.Errorf("50 requests: status %v", res.Status)
		}
		return nil
	})
	faultsBefore := metricSum(ctx, t, m, 0, "weft_proxy_faults_injected_total", `kind="abort"`)
	retriesBefore := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`)
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://faulty.demo/abort-retried", Requests: 2000, Concurrency: 8})
	faults := metricSum(ctx, t, m, 0, "weft_proxy_faults_injected_total", `kind="abort"`) - faultsBefore
	retries := metricSum(ctx, t, m, 0, "weft_proxy_retries_total", `result="retried"`) - retriesBefore
	s := share(res.Status[503], res.Requests)
	t.Logf("abort 50%% with 5 retries: %d requests, status %v, errors %d, 503 share %.2f%% (expected 1.56), aborts injected %.0f, retries %.0f",
		res.Requests, res.Status, res.Errors, s, faults, retries)
	if res.Errors != 0 || res.Status[200]+res.Status[503] != res.Requests {
		t.Errorf("want only 200s and 503s: errors %d %v, status %v", res.Errors, res.ErrorSamples, res.Status)
	}
	// Binomial(2000, 1/64): mean 31, sd 5.5.
	if n := res.Status[503]; n < 10 || n > 60 {
		t.Errorf("%d requests failed; want about 31 (2000/64): retries should hide all but 1/64 of the aborts", n)
	}
	if int(faults) != int(retries)+res.Status[503] {
		t.Errorf("aborts injected %.0f != retries %.0f + answered 503s %d: each abort is either retried or answered", faults, retries, res.Status[503])
	}
}

func testDelay50(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "74-l7-slow.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: slow, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: slow}]
  faults:
    delay: {fixedDelay: 200ms, percentage: 50}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	eventually(t, 20*time.Second, "delays are injected on slow", func() error {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: "http://slow.demo/probe", Requests: 10, Concurrency: 10})
		if err != nil {
			return err
		}
		if res.Latency.Max < 200*time.Millisecond {
			return fmt.Errorf("10 requests, slowest %s", res.Latency.Max)
		}
		return nil
	})
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://slow.demo/delay", Requests: 1000, Concurrency: 25})
	above, below := latencyShares(res.LatenciesMs, 100, 200)
	t.Logf("delay 50%%: %d requests in %s, status %v, errors %d, ≥200ms %.2f%%, <100ms %.2f%%, latency %+v",
		res.Requests, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors, above, below, res.Latency)
	if res.Errors != 0 || res.Status[200] != res.Requests {
		t.Errorf("want every request 200: errors %d %v, status %v", res.Errors, res.ErrorSamples, res.Status)
	}
	if above < 42 || above > 58 {
		t.Errorf("%.2f%% of the latencies ≥ 200ms; want 50 ± 8", above)
	}
	if below < 42 || below > 58 {
		t.Errorf("%.2f%% of the latencies < 100ms; want 50 ± 8", below)
	}
}

func testGRPCAbort(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const url = "http://echogrpc.demo:9090"
	// Without a policy the calls work (the h2c path carries gRPC).
	base, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: url, GRPC: true, Requests: 10, Concurrency: 2, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gRPC without a policy: status %v, codes %v, errors %d %v, pods %v", base.Status, base.GRPCCodes, base.Errors, base.ErrorSamples, base.Pods)
	if base.GRPCCodes["OK"] != base.Requests {
		t.Errorf("gRPC calls without a policy: codes %v, errors %v; want all OK", base.GRPCCodes, base.ErrorSamples)
	}
	const file = "75-l7-grpc.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: echogrpc, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echogrpc}]
  faults:
    abort: {grpcStatus: UNAVAILABLE, percentage: 100}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	var last *echo.LoadResult
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: url, GRPC: true, Requests: 5, Concurrency: 1, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		last = res
		if res.GRPCCodes["Unavailable"] > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if last.GRPCCodes["Unavailable"] == 0 {
		t.Fatalf("gRPC abort never observed in 20s: status %v, codes %v, errors %d %v", last.Status, last.GRPCCodes, last.Errors, last.ErrorSamples)
	}
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: url, GRPC: true, Requests: 200, Concurrency: 8, Timeout: 5 * time.Second})
	t.Logf("gRPC abort 100%%: %d calls, status %v, codes %v, errors %d %v", res.Requests, res.Status, res.GRPCCodes, res.Errors, res.ErrorSamples)
	if res.GRPCCodes["Unavailable"] != res.Requests {
		t.Errorf("want every call Unavailable: codes %v, status %v, errors %d %v", res.GRPCCodes, res.Status, res.Errors, res.ErrorSamples)
	}
}

func testPerTryTimeout(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "76-l7-pertry.yaml"
	// A per-try timeout ends the attempt with outcome timedOut, which
	// outboundhttp.go retries as a reset before the response: retried
	// under 5xx, gateway-error and reset. 5xx it is.
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: pertry, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: pertry}]
  retry:
    attempts: 3
    perTryTimeout: 150ms
    retryOn: [5xx]
    backoff: {baseInterval: 5ms, maxInterval: 20ms}
    budget: {percent: 100, minRetriesPerSecond: 1000}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	// Always slow: the 4 tries are cut at 150ms each and the proxy answers
	// 504 well before the 2s.
	eventually(t, 30*time.Second, "slow tries are cut on pertry", func() error {
		t0 := time.Now()
		res, err := m.Do(ctx, l7Client, echo.Request{URL: "http://pertry.demo/probe", Header: http.Header{"X-Echo-Delay": {"2s"}}, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		if res.Status != 504 || time.Since(t0) > 1500*time.Millisecond {
			return fmt.Errorf("status %d (%s) after %s", res.Status, res.Headers.Get("X-Weft-Local-Reply"), time.Since(t0))
		}
		if r := res.Headers.Get("X-Weft-Local-Reply"); r != "upstream_timeout" {
			return fmt.Errorf("504 with X-Weft-Local-Reply %q; want upstream_timeout", r)
		}
		return nil
	})
	hdr := http.Header{"X-Echo-Delay": {"2s"}, "X-Echo-Delay-Percent": {"50"}}
	res := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: "http://pertry.demo/slow", Requests: 200, Concurrency: 16, Header: hdr, Timeout: 5 * time.Second})
	ok := share(res.Status[200], res.Requests)
	p99 := percentile(res.LatenciesMs, 99)
	t.Logf("per-try timeout: %d requests in %s, status %v, errors %d %v, success %.2f%%, latency %+v",
		res.Requests, res.Elapsed.Round(time.Millisecond), res.Status, res.Errors, res.ErrorSamples, ok, res.Latency)
	// Each try is slow with probability 1/2; a request fails when its 4
	// tries all are: success 93.75% (σ ≈ 1.7 points over 200). Every
	// request, failed or not, ends within 4 × 150ms plus backoffs.
	if res.Errors != 0 || res.Status[200]+res.Status[504] != res.Requests {
		t.Errorf("want only 200s and 504s: errors %d %v, status %v", res.Errors, res.ErrorSamples, res.Status)
	}
	if ok < 88 || ok > 99 {
		t.Errorf("success %.2f%%; want 93.75 ± 5 (1 - 0.5^4)", ok)
	}
	if p99 >= 1000 || res.Latency.Max >= 1500*time.Millisecond {
		t.Errorf("p99 %.0fms, max %s; want p99 < 1s (the 2s tries cut at 150ms)", p99, res.Latency.Max)
	}
}

func testHeaderCanary(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches:
    - headers:
      - {name: x-canary, value: "true"}
    backendRefs: [{name: web-v2, port: 80}]
  - backendRefs: [{name: web-v1, port: 80}]
`); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	tagged := http.Header{"X-Canary": {"true"}}
	waitAll(ctx, t, m, webURL, "v1", 20, nil)
	waitAll(ctx, t, m, webURL, "v2", 20, tagged)
	plain := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: webURL + "plain", Requests: 200, Concurrency: 8})
	canary := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: webURL + "canary", Requests: 200, Concurrency: 8, Header: tagged})
	other := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: webURL + "other", Requests: 50, Concurrency: 4, Header: http.Header{"X-Canary": {"false"}}})
	t.Logf("header canary: untagged %v %v, tagged %v %v, x-canary: false %v %v", plain.Status, plain.Pods, canary.Status, canary.Pods, other.Status, other.Pods)
	if err := onlyVersion(plain, "v1"); err != nil {
		t.Errorf("untagged: %v", err)
	}
	if err := onlyVersion(canary, "v2"); err != nil {
		t.Errorf("x-canary: true: %v", err)
	}
	if err := onlyVersion(other, "v1"); err != nil {
		t.Errorf("x-canary: false: %v", err)
	}
}

// testRedirect: an HTTPRoute RequestRedirect is answered by the client's
// node proxy with the status and the Location the Gateway API specifies.
func testRedirect(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-moved, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: example.org, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - backendRefs: [{name: web-v1, port: 80}]
`); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	var res *echo.Result
	eventually(t, 20*time.Second, "GET /old/x is redirected", func() error {
		var err error
		res, err = m.Get(ctx, l7Client, webURL+"old/x?q=1")
		if err != nil {
			return err
		}
		if res.Status != 301 {
			return fmt.Errorf("GET /old/x: %d", res.Status)
		}
		return nil
	})
	if loc := res.Headers.Get("Location"); loc != "http://example.org/new/x?q=1" {
		t.Errorf("Location %q, want http://example.org/new/x?q=1", loc)
	}
	if got := res.Headers.Get("X-Weft-Local-Reply"); got != "redirect" || res.Reply != nil {
		t.Errorf("redirect: X-Weft-Local-Reply %q, reply %+v; want a local reply", got, res.Reply)
	}
	if res, err := m.Get(ctx, l7Client, webURL+"older"); err != nil || res.Status != 200 {
		t.Errorf("GET /older (not under the prefix /old): %v %+v, want 200 from web-v1", err, res)
	}
}

// testURLRewrite: an HTTPRoute URLRewrite changes the path (prefix) and
// the Host the backend sees.
func testURLRewrite(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-rewrite, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {hostname: rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
    backendRefs: [{name: web-v1, port: 80}]
  - backendRefs: [{name: web-v1, port: 80}]
`); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	eventually(t, 20*time.Second, "GET /api/items is rewritten", func() error {
		res, err := m.Get(ctx, l7Client, webURL+"api/items")
		if err != nil {
			return err
		}
		if res.Status != 200 || res.Reply == nil || res.Reply.Path != "/v2/items" {
			return fmt.Errorf("GET /api/items: %d %+v", res.Status, res.Reply)
		}
		if res.Reply.Host != "rewritten.example" {
			return fmt.Errorf("Host %q, want rewritten.example", res.Reply.Host)
		}
		return nil
	})
	for path, want := range map[string]string{"api": "/v2", "api/": "/v2/", "apix": "/apix", "other": "/other"} {
		res, err := m.Get(ctx, l7Client, webURL+path)
		if err != nil || res.Reply == nil || res.Reply.Path != want {
			t.Errorf("GET /%s: %v %+v; want the backend to see %s", path, err, res, want)
		}
	}
}

// testBackendHeaders: header changes on a backendRef apply to the requests
// sent to that backend only, after the rule's.
func testBackendHeaders(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-backend-headers, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-rule, value: "yes"}, {name: x-backend, value: rule}]}
    backendRefs:
    - name: web-v1
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-backend, value: v1}]}}]
    - name: web-v2
      port: 80
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-backend, value: v2}]}}]
`); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	seen := map[string]int{}
	eventually(t, 20*time.Second, "both backends get their own header", func() error {
		res, err := m.Get(ctx, l7Client, webURL+"backend-headers")
		if err != nil {
			return err
		}
		if res.Reply == nil {
			return fmt.Errorf("status %d, no reply", res.Status)
		}
		got := strings.Join(res.Reply.Headers["X-Backend"], ",")
		version := "v1"
		if strings.HasPrefix(res.Reply.Pod, "web-v2") {
			version = "v2"
		}
		if got == "" {
			return fmt.Errorf("no x-backend header yet (pod %s)", res.Reply.Pod)
		}
		if got != version || strings.Join(res.Reply.Headers["X-Rule"], ",") != "yes" {
			return fmt.Errorf("pod %s saw x-backend %q, x-rule %q; want %s and yes", res.Reply.Pod, got, res.Reply.Headers["X-Rule"], version)
		}
		seen[version]++
		if seen["v1"] == 0 || seen["v2"] == 0 {
			return fmt.Errorf("seen %v so far", seen)
		}
		return nil
	})
}

func testNoMatchingRoute404(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	if err := m.Apply(routeFile, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-api, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: web}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
    backendRefs: [{name: web-v1, port: 80}]
`); err != nil {
		t.Fatal(err)
	}
	defer removeRoute(ctx, t, m)
	var res *echo.Result
	eventually(t, 20*time.Second, "GET /other is answered 404", func() error {
		var err error
		res, err = m.Get(ctx, l7Client, webURL+"other")
		if err != nil {
			return err
		}
		if res.Status != 404 {
			return fmt.Errorf("GET /other: %d", res.Status)
		}
		return nil
	})
	if r := res.Headers.Get("X-Weft-Local-Reply"); r != "route_not_found" || res.Reply != nil {
		t.Errorf("GET /other: 404 with X-Weft-Local-Reply %q, reply %+v; want route_not_found from the proxy", r, res.Reply)
	}
	for _, path := range []string{"api/x", "api", "api/"} {
		res, err := m.Get(ctx, l7Client, webURL+path)
		if err != nil || res.Status != 200 || res.Reply == nil || !strings.HasPrefix(res.Reply.Pod, "web-v1-") {
			t.Errorf("GET /%s: %+v, %v; want 200 from a v1 pod", path, res, err)
		}
	}
	// A path that only shares a string prefix is not under /api.
	if res, err := m.Get(ctx, l7Client, webURL+"apix"); err != nil || res.Status != 404 {
		t.Errorf("GET /apix: %+v, %v; want 404 (PathPrefix matches path segments)", res, err)
	}
	load := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: webURL + "nothing", Requests: 200, Concurrency: 8})
	t.Logf("no route: GET /nothing ×%d: status %v, errors %d", load.Requests, load.Status, load.Errors)
	if load.Status[404] != load.Requests {
		t.Errorf("GET /nothing ×%d: status %v, errors %d %v; want all 404", load.Requests, load.Status, load.Errors, load.ErrorSamples)
	}
}

func testOutlierEjection(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "77-l7-outlier.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: outlier, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: outlier}]
  outlierDetection: {consecutive5xxErrors: 3, baseEjectionTime: 30s}
  loadBalancer: {algorithm: RoundRobin}
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete(file)
	// Round robin, so that the dead endpoint keeps being picked unless it
	// is ejected (P2C with peak EWMA would shun it on its own).
	// Nothing is observable before a failure: wait until node 0's proxy
	// has the cluster with its outlier detection.
	eventually(t, 20*time.Second, "node 0 has outlier detection on outlier's cluster", func() error {
		b, err := nodeGet(ctx, m, 0, 15000, "/config_dump")
		if err != nil {
			return err
		}
		var dump struct {
			Resources map[string]map[string]json.RawMessage `json:"resources"`
		}
		if err := json.Unmarshal(b, &dump); err != nil {
			return fmt.Errorf("config dump: %w", err)
		}
		found := false
		for _, byName := range dump.Resources {
			// The cluster, and perhaps its endpoints under the same name.
			if c, ok := byName["outbound|80||outlier.demo.svc.cluster.local"]; ok {
				found = true
				if strings.Contains(string(c), "outlierDetection") {
					return nil
				}
			}
		}
		if !found {
			return fmt.Errorf("no cluster outbound|80||outlier.demo.svc.cluster.local in the config dump")
		}
		return fmt.Errorf("the cluster has no outlierDetection yet")
	})
	url := "http://outlier.demo/"
	warm := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: url + "warm", Requests: 20, Concurrency: 1})
	if warm.Status[200] != 20 || warm.Pods["web-v1-n0"] != 10 || warm.Pods["web-v1-n1"] != 10 {
		t.Fatalf("before the stop: status %v, pods %v; want 200s from both v1 pods, round robin", warm.Status, warm.Pods)
	}
	const dead, live = "web-v1-n1", "web-v1-n0"
	if err := m.StopEcho(dead); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.StartEcho(ctx, dead); err != nil {
			t.Errorf("restart weft-echo in %s: %v", dead, err)
		}
	}()
	ejectionsBefore := metricSum(ctx, t, m, 0, "weft_proxy_outlier_ejections_total", `cluster="outbound|80||outlier.demo.svc.cluster.local"`)
	first := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: url + "first", Requests: 50, Concurrency: 1})
	second := mustLoad(ctx, t, m, l7Client, echo.LoadSpec{URL: url + "second", Requests: 50, Concurrency: 1})
	ejected := metricSum(ctx, t, m, 0, "weft_proxy_outlier_ejected", `cluster="outbound|80||outlier.demo.svc.cluster.local"`)
	ejections := metricSum(ctx, t, m, 0, "weft_proxy_outlier_ejections_total", `cluster="outbound|80||outlier.demo.svc.cluster.local"`) - ejectionsBefore
	if ejected != 1 || ejections < 1 {
		t.Errorf("weft_proxy_outlier_ejected %v, ejections +%v; want 1 endpoint ejected", ejected, ejections)
	}
	failures := first.Requests - first.Status[200]
	t.Logf("outlier: first 50: status %v, errors %d %v, pods %v; last 50: status %v, errors %d, pods %v",
		first.Status, first.Errors, first.ErrorSamples, first.Pods, second.Status, second.Errors, second.Pods)
	if failures < 1 {
		t.Errorf("no request failed after %s stopped: the dead endpoint was never tried, ejection is not shown", dead)
	}
	if failures > 6 {
		t.Errorf("%d of the first 50 requests failed after %s stopped; want at most 6 (ejection after 3 consecutive 5xx)", failures, dead)
	}
	if second.Status[200] != second.Requests || second.Pods[live] != second.Requests {
		t.Errorf("last 50: status %v, errors %d %v, pods %v; want all 200 from %s", second.Status, second.Errors, second.ErrorSamples, second.Pods, live)
	}
}

func testL7Authorization(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "78-l7-authz.yaml"
	if err := m.Apply(file, `apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: authz-public-get, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: authz}]
  action: Allow
  rules:
  - from: [{namespaces: [demo]}]
    to: [{methods: [GET], paths: [/public, "/public/*"]}]
---
# Round robin, so that both v1 pods (one per node) answer and refuse.
apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: authz-rr, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: authz}]
  loadBalancer: {algorithm: RoundRobin}
`); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Delete(file); err != nil {
			t.Error(err)
		}
		eventually(t, 20*time.Second, "POST /public/x works once the policy is gone", func() error {
			res, err := m.Do(ctx, l7Client, echo.Request{Method: http.MethodPost, URL: "http://authz.demo/public/x"})
			if err != nil || res.Status != 200 {
				return fmt.Errorf("%+v, %v", res, err)
			}
			return nil
		})
	}()
	url := "http://authz.demo"
	eventually(t, 20*time.Second, "POST /public/x is denied", func() error {
		res, err := m.Do(ctx, l7Client, echo.Request{Method: http.MethodPost, URL: url + "/public/x"})
		if err != nil {
			return err
		}
		if res.Status != 403 {
			return fmt.Errorf("POST /public/x: %d", res.Status)
		}
		seen := map[string]bool{}
		for range 4 {
			res, err := m.Get(ctx, l7Client, url+"/public/rr")
			if err != nil || res.Reply == nil {
				return fmt.Errorf("GET /public/rr: %+v, %v", res, err)
			}
			seen[res.Reply.Pod] = true
		}
		if len(seen) != 2 {
			return fmt.Errorf("4 GETs answered by %v; want both v1 pods (round robin)", seen)
		}
		return nil
	})
	// Several times each: the two v1 pods are on both nodes.
	for _, tc := range []struct {
		pod, method, path string
		want              int
	}{
		{l7Client, http.MethodGet, "/public/x", 200},
		{l7Client, http.MethodGet, "/public", 200},
		{l7Client, http.MethodPost, "/public/x", 403},
		{l7Client, http.MethodGet, "/private", 403},
		{l7Client, http.MethodGet, "/publicity", 403},
		{"outsider", http.MethodGet, "/public/x", 403},
	} {
		codes := map[int]int{}
		pods := map[string]int{}
		var sample *echo.Result
		for range 6 {
			res, err := m.Do(ctx, tc.pod, echo.Request{Method: tc.method, URL: url + tc.path})
			if err != nil {
				t.Errorf("%s %s from %s: %v", tc.method, tc.path, tc.pod, err)
				break
			}
			codes[res.Status]++
			if res.Reply != nil {
				pods[res.Reply.Pod]++
			}
			if res.Status != tc.want {
				sample = res
			}
		}
		t.Logf("%s %s from %s: %v, pods %v", tc.method, tc.path, tc.pod, codes, pods)
		if tc.want == 200 && len(pods) != 2 {
			t.Errorf("%s %s from %s: answered by %v; want both v1 pods", tc.method, tc.path, tc.pod, pods)
		}
		if codes[tc.want] != 6 {
			t.Errorf("%s %s from %s: %v; want all %d (one: %+v)", tc.method, tc.path, tc.pod, codes, tc.want, sample)
		}
	}
	// The denied requests are refused by the destination's proxy before
	// they reach weft-echo: the 403 is not weft-echo's.
	res, err := m.Do(ctx, l7Client, echo.Request{URL: url + "/private"})
	if err == nil && res.Status == 403 && res.Reply != nil {
		t.Errorf("GET /private: the 403 came from weft-echo %s; want the proxy's", res.Reply.Pod)
	}
	if err == nil {
		t.Logf("GET /private 403: headers %v, body %q", res.Headers, res.Body)
	}
}

// testConsumerRoute: an HTTPRoute in namespace other attached to Service
// demo/web (a GAMMA consumer route) applies to other's clients only: for
// the outsider pod only /only/... reaches web (with a header added) and
// anything else is 404; the demo client keeps the producer default.
func testConsumerRoute(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "79-l7-consumer.yaml"
	if err := m.Apply(file, `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web-for-other, namespace: other}
spec:
  parentRefs: [{group: "", kind: Service, name: web, namespace: demo}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /only}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-consumer, value: other}]}
    backendRefs: [{name: web, namespace: demo, port: 80}]
`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the consumer route applies to the outsider", func() error {
		res, err := m.Get(ctx, "outsider", webURL+"elsewhere")
		if err != nil {
			return err
		}
		if res.Status != 404 {
			return fmt.Errorf("GET /elsewhere from outsider: %d", res.Status)
		}
		return nil
	})
	res, err := m.Get(ctx, "outsider", webURL+"only/x")
	if err != nil || res.Status != 200 || res.Reply == nil {
		t.Fatalf("GET /only/x from outsider: %+v, %v; want 200", res, err)
	}
	if got := res.Reply.Headers["X-Consumer"]; len(got) != 1 || got[0] != "other" {
		t.Errorf("GET /only/x from outsider: x-consumer %q; want the consumer route's header", got)
	}
	for _, path := range []string{"elsewhere", "only/x"} {
		res, err := m.Get(ctx, l7Client, webURL+path)
		if err != nil || res.Status != 200 || res.Reply == nil {
			t.Errorf("GET /%s from the demo client: %+v, %v; want 200 (producer default)", path, res, err)
		} else if len(res.Reply.Headers["X-Consumer"]) != 0 {
			t.Errorf("GET /%s from the demo client carries the consumer route's header", path)
		}
	}
	if err := m.Delete(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the consumer route is gone", func() error {
		res, err := m.Get(ctx, "outsider", webURL+"elsewhere")
		if err != nil {
			return err
		}
		if res.Status != 200 {
			return fmt.Errorf("GET /elsewhere from outsider: %d", res.Status)
		}
		return nil
	})
}

// testGRPCAuthorization: an AuthorizationPolicy naming gRPC methods (as
// paths) on a port declared grpc is enforced per call by the destination
// node proxy: a method the policy does not allow ends in PERMISSION_DENIED,
// and once the method is allowed the calls succeed.
func testGRPCAuthorization(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	const file = "80-l7-grpc-authz.yaml"
	policy := func(path string) string {
		return fmt.Sprintf(`apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: grpc-methods, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echogrpc}]
  action: Allow
  rules:
  - from: [{namespaces: [demo]}]
    to: [{paths: [%q]}]
`, path)
	}
	url := fmt.Sprintf("http://echogrpc.demo:%d", sandbox.EchoGRPCPort)
	defer func() {
		if err := m.Delete(file); err != nil {
			t.Error(err)
		}
	}()
	calls := func(n int) *echo.LoadResult {
		res, err := m.Load(ctx, l7Client, echo.LoadSpec{URL: url, GRPC: true, Requests: n, Concurrency: 2, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if err := m.Apply(file, policy("/weft.echo.v1.Echo/SomethingElse")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "gRPC Echo is denied", func() error {
		if res := calls(4); res.GRPCCodes["PermissionDenied"] != res.Requests {
			return fmt.Errorf("codes %v, errors %d %v", res.GRPCCodes, res.Errors, res.ErrorSamples)
		}
		return nil
	})
	res := calls(40)
	t.Logf("gRPC with Echo not allowed: codes %v, errors %d", res.GRPCCodes, res.Errors)
	if res.GRPCCodes["PermissionDenied"] != res.Requests {
		t.Errorf("codes %v; want every call PermissionDenied", res.GRPCCodes)
	}
	if err := m.Apply(file, policy("/weft.echo.v1.Echo/*")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "gRPC Echo is allowed", func() error {
		if res := calls(4); res.GRPCCodes["OK"] != res.Requests {
			return fmt.Errorf("codes %v, errors %d %v", res.GRPCCodes, res.Errors, res.ErrorSamples)
		}
		return nil
	})
	res = calls(40)
	t.Logf("gRPC with Echo allowed: codes %v, pods %v", res.GRPCCodes, res.Pods)
	if res.GRPCCodes["OK"] != res.Requests {
		t.Errorf("codes %v; want every call OK", res.GRPCCodes)
	}
}

// testHTTP1Wire speaks raw HTTP/1.1 from the client pod to the web
// Service, through the client's L7 path: pipelining, a body too large to
// buffer for retries, a chunked body with a trailer, Expect:
// 100-continue (answered by the proxy), HEAD, HTTP/1.0 without
// keep-alive, and a smuggling shape refused with 400.
func testHTTP1Wire(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	addr := netip.AddrPortFrom(m.ServiceIP("web.demo"), 80).String()
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := m.Dial(ctx, l7Client, addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		return c, bufio.NewReader(c)
	}
	read := func(br *bufio.Reader, method, what string) *http.Response {
		t.Helper()
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: body: %v", what, err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp
	}
	want := func(resp *http.Response, code int, what string) {
		t.Helper()
		if resp.StatusCode != code || (code == 200 && resp.Header.Get("X-Echo-Pod") == "") {
			t.Errorf("%s: %d (pod %q, local reply %q); want %d", what, resp.StatusCode, resp.Header.Get("X-Echo-Pod"), resp.Header.Get("X-Weft-Local-Reply"), code)
		}
	}

	c, br := dial()
	defer c.Close()
	// Two requests in one write.
	io.WriteString(c, "GET /one HTTP/1.1\r\nHost: web.demo\r\n\r\nGET /two HTTP/1.1\r\nHost: web.demo\r\n\r\n")
	want(read(br, "GET", "pipelined 1"), 200, "pipelined 1")
	want(read(br, "GET", "pipelined 2"), 200, "pipelined 2")
	// A 200 KiB body: more than the 64 KiB kept for retries, streamed.
	big := bytes.Repeat([]byte("x"), 200<<10)
	fmt.Fprintf(c, "POST /big HTTP/1.1\r\nHost: web.demo\r\nContent-Length: %d\r\n\r\n", len(big))
	c.Write(big)
	want(read(br, "POST", "200 KiB body"), 200, "200 KiB body")
	// Chunked, with a trailer.
	io.WriteString(c, "POST /chunked HTTP/1.1\r\nHost: web.demo\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
	want(read(br, "POST", "chunked body"), 200, "chunked body")
	// Expect: 100-continue is answered before the body is sent.
	io.WriteString(c, "POST /expect HTTP/1.1\r\nHost: web.demo\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("Expect: 100-continue: got %q, %v; want 100 Continue", line, err)
	}
	if blank, _ := br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue followed by %q", blank)
	}
	io.WriteString(c, "hello")
	want(read(br, "POST", "after 100-continue"), 200, "after 100-continue")
	// HEAD: no body, and the connection goes on.
	io.WriteString(c, "HEAD /head HTTP/1.1\r\nHost: web.demo\r\n\r\n")
	if resp := read(br, "HEAD", "HEAD"); resp.StatusCode != 200 {
		t.Errorf("HEAD: %d", resp.StatusCode)
	}
	io.WriteString(c, "GET /after-head HTTP/1.1\r\nHost: web.demo\r\n\r\n")
	want(read(br, "GET", "after HEAD"), 200, "after HEAD")

	// HTTP/1.0 without keep-alive: one response, then the proxy closes.
	c10, br10 := dial()
	defer c10.Close()
	io.WriteString(c10, "GET /old HTTP/1.0\r\nHost: web.demo\r\n\r\n")
	want(read(br10, "GET", "HTTP/1.0"), 200, "HTTP/1.0")
	if n, err := br10.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("HTTP/1.0 connection still open after the response: %d, %v", n, err)
	}

	// Both Content-Length and Transfer-Encoding: refused with 400, closed.
	cs, brs := dial()
	defer cs.Close()
	io.WriteString(cs, "POST /smuggle HTTP/1.1\r\nHost: web.demo\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	resp := read(brs, "POST", "smuggling shape")
	if resp.StatusCode != 400 || resp.Header.Get("X-Weft-Local-Reply") != "bad_request" {
		t.Errorf("CL+TE request: %d, local reply %q; want 400 bad_request", resp.StatusCode, resp.Header.Get("X-Weft-Local-Reply"))
	}
	if n, err := brs.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("connection still open after a malformed request: %d, %v", n, err)
	}
}
