package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/tests/apps/echo"
)

// `weftctl sandbox demo` walks through the mesh in a sandbox: this file has
// the command and the pure checks of each step's outcome;
// sandbox_demo_linux.go runs the steps.

// sandboxDemoOptions are the flags of `sandbox demo`.
type sandboxDemoOptions struct {
	name         string
	binDir       string
	otlpEndpoint string
	stay         bool
}

func newSandboxDemoCmd() *cobra.Command {
	var o sandboxDemoOptions
	cmd := &cobra.Command{
		Use:   "demo [--name demo] [--bin DIR] [--otlp-endpoint host:port] [--stay]",
		Short: "Build a sandbox and walk through the mesh: mTLS, STRICT, authorization, canary, retries, faults, tracing",
		Long: `Build a sandbox (2 nodes x 2 pods, namespace demo enrolled) with tracing on, and walk
through what the mesh does, checking each outcome: mTLS between the pods with their
identities, the node proxy's workloads and certificates, plaintext refused (STRICT), an
AuthorizationPolicy denying a port, a canary shift with an HTTPRoute, retries hiding
failures, fault injection, and the trace of one request. The sandbox is torn down at
the end, on Ctrl-C or SIGTERM, and when a step fails (the exit status is then 1 and the
logs are kept). With --stay it stays up until Ctrl-C.

The binaries are found as for ` + "`sandbox up`" + `: run ` + "`make build`" + ` first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Geteuid() != 0 {
				return errors.New("sandbox demo needs root: it creates network namespaces")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runSandboxDemo(ctx, cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.name, "name", "demo", "sandbox name: prefixes every network namespace (1-12 lowercase letters and digits)")
	f.StringVar(&o.binDir, "bin", "", "directory holding the weft binaries (default: weftctl's own directory, else ./bin)")
	f.StringVar(&o.otlpEndpoint, "otlp-endpoint", "", "also forward every span to this OTLP/gRPC collector (host:port, plaintext)")
	f.BoolVar(&o.stay, "stay", false, "keep the sandbox up at the end until Ctrl-C")
	return cmd
}

// Names in the default sandbox the demo relies on.
const (
	demoClient  = "echo-n0-p0" // every call starts here
	demoCanary1 = "echo-n1-p0" // backs echo-v1
	demoCanary2 = "echo-n1-p1" // backs echo-v2
	demoService = "echo.demo"
	demoSPIFFE  = "spiffe://cluster.local/ns/demo/sa/echo"
)

// The config files the steps write, with what they hold.
const (
	demoDenyFile = "60-demo-deny.yaml"
	demoDenyYAML = `apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-tcp, namespace: demo}
spec:
  targetRefs: [{name: echo}]
  action: Deny
  rules:
  - from: [{namespaces: [demo]}]
    to: [{ports: [7070]}]
`
	demoCanaryServicesFile = "70-demo-canary-services.yaml"
	demoCanaryServicesYAML = `apiVersion: v1
kind: Service
metadata: {name: echo-v1, namespace: demo}
spec:
  clusterIP: 10.96.0.201
  selector: {pod: ` + demoCanary1 + `}
  ports: [{name: http, port: 8080, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: demo}
spec:
  clusterIP: 10.96.0.202
  selector: {pod: ` + demoCanary2 + `}
  ports: [{name: http, port: 8080, appProtocol: http}]
`
	demoRouteFile = "71-demo-route.yaml"
	demoRetryFile = "72-demo-retry.yaml"
	// demoRetries is the retry policy's attempts: with half the tries
	// failing, a request fails only when all demoRetries+1 do.
	demoRetries      = 5
	demoRetryYAMLFmt = `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-retry, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  retry: {attempts: %d, retryOn: [5xx], budget: {percent: 100, minRetriesPerSecond: 1000}}
`
	demoFaultFile = "73-demo-fault.yaml"
	demoFaultYAML = `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-chaos, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
  faults:
    abort: {httpStatus: 503, percentage: 25}
    delay: {fixedDelay: 200ms, percentage: 10}
`
)

// demoRoute is the canary HTTPRoute sending v1% of echo's requests to
// echo-v1 and v2% to echo-v2.
func demoRoute(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: echo-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 8080}]
  rules:
  - backendRefs: [{name: echo-v1, port: 8080, weight: %d}, {name: echo-v2, port: 8080, weight: %d}]
`, v1, v2)
}

// demoIsTerminal reports whether w is a terminal, where headings are bold.
func demoIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// demoMetricSum is the sum of the samples of the metric name in a
// Prometheus text exposition whose labels include every label="value" of
// labels; a metric with no such sample sums to 0.
func demoMetricSum(text []byte, name string, labels ...string) (float64, error) {
	sum := 0.0
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, "{") && !strings.HasPrefix(rest, " ")) {
			continue
		}
		var have []string
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, fmt.Errorf("metric line %q: no closing brace", line)
			}
			have, rest = strings.Split(rest[1:end], ","), rest[end+1:]
		}
		if slices.ContainsFunc(labels, func(l string) bool { return !slices.Contains(have, l) }) {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, fmt.Errorf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// demoTraceID returns the trace ID of a W3C traceparent header value.
func demoTraceID(traceparent string) (string, bool) {
	f := strings.Split(strings.TrimSpace(traceparent), "-")
	if len(f) != 4 || len(f[1]) != 32 || strings.Trim(f[1], "0123456789abcdef") != "" {
		return "", false
	}
	return f[1], true
}

// demoShare is 100 × n / total.
func demoShare(n, total int) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(n) / float64(total)
}

// demoAllFrom checks that every request of res was answered 200 by pod.
func demoAllFrom(res *echo.LoadResult, pod string) error {
	if res.Errors != 0 || res.Status[200] != res.Requests || res.Pods[pod] != res.Requests {
		return fmt.Errorf("%s; want all %d answered 200 by %s", res.Summary(), res.Requests, pod)
	}
	return nil
}

// demoOnlyPods reports whether every reply of res came from one of pods.
func demoOnlyPods(res *echo.LoadResult, pods ...string) bool {
	for p, n := range res.Pods {
		if n > 0 && !slices.Contains(pods, p) {
			return false
		}
	}
	return true
}

// demoSplit checks that every request of res was answered 200 by a or b,
// each taking between lo% and hi% of them.
func demoSplit(res *echo.LoadResult, a, b string, lo, hi float64) error {
	sa, sb := demoShare(res.Pods[a], res.Requests), demoShare(res.Pods[b], res.Requests)
	if res.Errors != 0 || res.Status[200] != res.Requests || !demoOnlyPods(res, a, b) ||
		sa < lo || sa > hi || sb < lo || sb > hi {
		return fmt.Errorf("%s; want all %d answered 200, each of %s and %s taking %.0f%% to %.0f%%", res.Summary(), res.Requests, a, b, lo, hi)
	}
	return nil
}

// demoFailed checks that every request of res was answered 200 or
// status, with status for between lo% and hi% of them.
func demoFailed(res *echo.LoadResult, status int, lo, hi float64) error {
	s := demoShare(res.Status[status], res.Requests)
	if res.Errors != 0 || res.Status[200]+res.Status[status] != res.Requests || s < lo || s > hi {
		return fmt.Errorf("%s; want every request answered 200 or %d, with %d for %.0f%% to %.0f%% of them", res.Summary(), status, status, lo, hi)
	}
	return nil
}

// demoSlowShare is the percentage of the latencies ms (milliseconds) that
// are at least min.
func demoSlowShare(ms []float64, min float64) float64 {
	n := 0
	for _, l := range ms {
		if l >= min {
			n++
		}
	}
	return demoShare(n, len(ms))
}
