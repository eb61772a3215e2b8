//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/cluster"
	"github.com/weftmesh/weft/tests/kube"
	"github.com/weftmesh/weft/tests/otlpsink"
	corev1 "k8s.io/api/core/v1"
)

// The suite's fixed names.
const (
	weftNS      = "weft-system"
	appNS       = "demo"  // enrolled
	plainNS     = "plain" // not enrolled
	clientID    = "spiffe://cluster.local/ns/demo/sa/client"
	echoURL     = "http://echo.demo:8080"
	stepTimeout = 3 * time.Minute
)

// env is the suite's shared state: the cluster, the tools, the OTLP sink.
type env struct {
	t       *testing.T
	c       *cluster.Cluster
	root    string // the repository
	bin     string // weftctl
	helm    string
	sink    *otlpsink.Sink
	node    string // the node's name
	clients map[string]string
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// TestMesh is the whole suite, in order: each step builds on the ones
// before, so a failed step stops it.
func TestMesh(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING the Kubernetes end-to-end suite: it needs root on Linux (containerd, kubelet, network namespaces); running as uid %d", os.Geteuid())
	}
	e := &env{t: t, root: repoRoot(), clients: map[string]string{}}
	ctx := t.Context()

	helm, err := kube.HelmPath()
	if err != nil {
		t.Fatal(err)
	}
	e.helm = helm
	e.bin = filepath.Join(t.TempDir(), "weftctl")
	if out, err := exec.Command("go", "build", "-o", e.bin, filepath.Join(e.root, "weftctl")).CombinedOutput(); err != nil {
		t.Fatalf("build weftctl: %v\n%s", err, out)
	}
	// The node proxy is on the host network: a sink on the host's loopback
	// receives its spans.
	e.sink, err = otlpsink.Start("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sink.Close)

	startCtx, cancel := context.WithTimeout(ctx, 40*time.Minute) // a first build of Kubernetes included
	defer cancel()
	c, err := cluster.Start(startCtx, cluster.Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("start the cluster: %v", err)
	}
	e.c = c
	t.Cleanup(func() {
		if t.Failed() {
			e.dumpState()
		}
		if err := c.Stop(); err != nil {
			t.Errorf("stop the cluster: %v", err)
		}
	})
	e.node = strings.TrimSpace(e.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"))

	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Install", e.testInstall},
		{"Enroll", e.testEnroll},
		{"MTLS", e.testMTLS},
		{"StrictRefusesPlaintext", e.testStrict},
		{"Canary", e.testCanary},
		{"FaultsAndRetries", e.testFaultsAndRetries},
		{"Traces", e.testTraces},
		{"WeftctlAdmin", e.testWeftctlAdmin},
		{"RollingNodeProxy", e.testRollingNodeProxy},
		{"Uninstall", e.testUninstall},
	}
	for _, s := range steps {
		start := time.Now()
		ok := t.Run(s.name, s.fn)
		t.Logf("%s took %s", s.name, time.Since(start).Round(100*time.Millisecond))
		if !ok {
			t.Fatalf("step %s failed; the later steps depend on it", s.name)
		}
	}
}

// kubectl runs kubectl and fails the test on error.
func (e *env) kubectl(args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	out, err := e.c.Kubectl(ctx, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// apply applies a manifest.
func (e *env) apply(t *testing.T, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.c.Kubectl(ctx, "apply", "-f", f); err != nil {
		t.Fatal(err)
	}
}

// run runs a program (helm, weftctl) with the cluster's kubeconfig and
// returns its combined output and error.
func (e *env) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.c.Kubeconfig, "HELM_CACHE_HOME="+e.t.TempDir(),
		"HELM_CONFIG_HOME="+e.t.TempDir(), "HELM_DATA_HOME="+e.t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (e *env) weftctl(args ...string) (string, error) { return e.run(2*time.Minute, e.bin, args...) }

// pod is the name of a Ready, not terminating pod matching selector in ns.
func (e *env) pod(t *testing.T, ns, selector string) string {
	t.Helper()
	var name string
	eventually(t, stepTimeout, "a ready pod "+selector+" in "+ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := e.c.Kubectl(ctx, "get", "pods", "-n", ns, "-l", selector, "-o", "json")
		if err != nil {
			return err
		}
		var list corev1.PodList
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			return err
		}
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					name = p.Name
					return nil
				}
			}
		}
		return fmt.Errorf("none yet")
	})
	return name
}

// echoIn runs weft-echo in pod (ns) with args and returns its standard output.
func (e *env) echoIn(ns, pod string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return e.c.Kubectl(ctx, append([]string{"exec", "-n", ns, pod, "--", "weft-echo"}, args...)...)
}

// get makes one request from pod (ns) and decodes weft-echo's result.
func (e *env) get(ns, pod string, args ...string) (*echo.Result, error) {
	out, err := e.echoIn(ns, pod, 30*time.Second, append([]string{"get"}, args...)...)
	if err != nil {
		return nil, err
	}
	var r echo.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("decode %q: %w", out, err)
	}
	return &r, nil
}

// load runs `weft-echo load` in pod (ns) and decodes the result.
func (e *env) load(t *testing.T, ns, pod string, args ...string) *echo.LoadResult {
	t.Helper()
	out, err := e.echoIn(ns, pod, 2*time.Minute, append([]string{"load"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	var r echo.LoadResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("decode load result: %v\n%s", err, out)
	}
	return &r
}

func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// dumpState logs what helps debug a failed run.
func (e *env) dumpState() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"logs", "-n", weftNS, "-l", "app.kubernetes.io/component=node-proxy", "-c", "node-proxy", "--tail=80"},
		{"logs", "-n", weftNS, "-l", "app.kubernetes.io/component=control-plane", "--tail=40"},
	} {
		out, err := e.c.Kubectl(ctx, args...)
		e.t.Logf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// --- the steps ---------------------------------------------------------

func (e *env) testInstall(t *testing.T) {
	out, err := e.weftctl("check", "--pre")
	t.Logf("weftctl check --pre:\n%s", out)
	if err != nil {
		t.Fatalf("weftctl check --pre: %v", err)
	}
	// The README's quick start: the cluster's values file, plus tracing to
	// the test's OTLP receiver.
	args := []string{"install", "weft", filepath.Join(e.root, "charts", "weft"), "--namespace", weftNS, "--create-namespace",
		"--values", e.c.HelmValuesFile(),
		"--set", "tracing.endpoint=" + e.sink.GRPCAddr(), "--set", "tracing.insecure=true",
		"--wait", "--timeout", "5m"}
	if out, err := e.run(6*time.Minute, e.helm, args...); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	// helm --wait can return before a one-node DaemonSet is Ready.
	e.kubectl("rollout", "status", "-n", weftNS, "deployment/weft-control-plane", "--timeout=3m")
	e.kubectl("rollout", "status", "-n", weftNS, "daemonset/weft-node-proxy", "--timeout=3m")

	// The CNI installer chained weft-cni into the node's conflist.
	eventually(t, time.Minute, "weft-cni in the conflist", func() error {
		conf, err := e.conflist()
		if err != nil {
			return err
		}
		if !strings.Contains(conf, `"weft-cni"`) {
			return fmt.Errorf("conflist:\n%s", conf)
		}
		return nil
	})
	var checkOut string
	eventually(t, 2*time.Minute, "weftctl check passes", func() error {
		checkOut, err = e.weftctl("check")
		return err
	})
	t.Logf("weftctl check:\n%s", checkOut)
}

// conflist is the node's primary CNI configuration.
func (e *env) conflist() (string, error) {
	files, err := filepath.Glob(filepath.Join(e.c.CNIConfDir, "*.conflist"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no conflist in %s (%v)", e.c.CNIConfDir, err)
	}
	b, err := os.ReadFile(files[0])
	return string(b), err
}

// plainClient is a client outside the mesh, in a namespace not enrolled.
func (e *env) plainClient() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: plain}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: plain}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      serviceAccountName: client
      terminationGracePeriodSeconds: 2
      containers:
      - name: echo
        image: weft/weft-echo:%s
        imagePullPolicy: Never
`, e.c.ImageTag)
}

// example reads a file of examples/echo (the README's quick start),
// checking that its images are the ones the cluster has.
func (e *env) example(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "examples", "echo", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "image: weft/") && !strings.Contains(string(b), "weft/weft-echo:"+e.c.ImageTag) {
		t.Fatalf("examples/echo/%s does not use weft/weft-echo:%s, the chart's appVersion: update it", name, e.c.ImageTag)
	}
	return string(b)
}

func (e *env) testEnroll(t *testing.T) {
	e.kubectl("create", "namespace", appNS)
	e.kubectl("create", "namespace", plainNS)
	out, err := e.weftctl("enroll", appNS)
	if err != nil {
		t.Fatalf("weftctl enroll: %v\n%s", err, out)
	}
	e.apply(t, e.example(t, "app.yaml"))
	e.apply(t, e.plainClient())
	for _, d := range []string{"echo-v1", "echo-v2", "client"} {
		e.kubectl("rollout", "status", "-n", appNS, "deployment/"+d, "--timeout=3m")
	}
	e.kubectl("rollout", "status", "-n", plainNS, "deployment/client", "--timeout=3m")
	// Readiness probes pass through STRICT inbound (the rollouts above
	// waited for Ready); the pods are enrolled.
	e.clients[appNS] = e.pod(t, appNS, "app=client")
	e.clients[plainNS] = e.pod(t, plainNS, "app=client")
	eventually(t, time.Minute, "the demo pods enrolled", func() error {
		out, err := e.weftctl("identity", "-n", appNS, e.clients[appNS])
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, clientID) {
			return fmt.Errorf("identity: %s", out)
		}
		return nil
	})
	if out, err := e.weftctl("identity", "-n", plainNS, e.clients[plainNS]); err == nil || !strings.Contains(out, "not enrolled") {
		t.Errorf("weftctl identity of the plain client: %v\n%s\nwant: not in the mesh", err, out)
	}
}

func (e *env) testMTLS(t *testing.T) {
	seen := map[string]bool{}
	eventually(t, time.Minute, "both echo versions answer the client over mTLS", func() error {
		r, err := e.get(appNS, e.clients[appNS], echoURL+"/hello")
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Reply == nil {
			return fmt.Errorf("status %d, reply %+v", r.Status, r.Reply)
		}
		if r.Reply.Identity != clientID {
			return fmt.Errorf("the server saw caller identity %q, want %q (mTLS through the node proxy)", r.Reply.Identity, clientID)
		}
		seen[r.Reply.Pod] = true
		if len(seen) < 2 {
			return fmt.Errorf("answered by %v so far", seen)
		}
		return nil
	})
	t.Logf("answered by %v with caller identity %s", seen, clientID)
}

func (e *env) testStrict(t *testing.T) {
	// The plain client reaches the Service's pods without mTLS: refused.
	podIP := strings.TrimSpace(e.kubectl("get", "pods", "-n", appNS, "-l", "app=echo,version=v1", "-o", "jsonpath={.items[0].status.podIP}"))
	for _, url := range []string{echoURL + "/plain", "http://" + podIP + ":8080/plain"} {
		r, err := e.get(plainNS, e.clients[plainNS], "--timeout", "3s", url)
		if err == nil && r.Status != 0 {
			t.Errorf("plaintext %s from outside the mesh answered %d (%+v); want refused (STRICT)", url, r.Status, r.Reply)
		}
	}
}

func (e *env) testCanary(t *testing.T) {
	e.apply(t, e.example(t, "canary.yaml"))
	eventually(t, time.Minute, "HTTPRoute Accepted", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := e.c.Kubectl(ctx, "get", "httproute", "-n", appNS, "echo-canary", "-o",
			`jsonpath={range .status.parents[*].conditions[?(@.type=="Accepted")]}{.status}{end}`)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "True" {
			return fmt.Errorf("Accepted = %q", out)
		}
		return nil
	})
	v1, v2 := e.pod(t, appNS, "version=v1"), e.pod(t, appNS, "version=v2")
	for _, stage := range []struct{ w1, w2 int }{{100, 0}, {50, 50}, {0, 100}} {
		if out, err := e.weftctl("canary", "set", "echo-canary", "-n", appNS,
			fmt.Sprintf("echo-v1=%d", stage.w1), fmt.Sprintf("echo-v2=%d", stage.w2)); err != nil {
			t.Fatalf("weftctl canary set: %v\n%s", err, out)
		}
		// Wait until the new weights apply: an all-or-nothing stage sees
		// only its pod; 50/50 sees both.
		eventually(t, time.Minute, fmt.Sprintf("weights %d/%d applied", stage.w1, stage.w2), func() error {
			r := e.load(t, appNS, e.clients[appNS], "-n", "40", "-c", "4", echoURL+"/probe")
			switch {
			case stage.w1 == 0 && r.Pods[v1] > 0, stage.w2 == 0 && r.Pods[v2] > 0:
				return fmt.Errorf("pods %v", r.Pods)
			case stage.w1 > 0 && stage.w2 > 0 && (r.Pods[v1] == 0 || r.Pods[v2] == 0):
				return fmt.Errorf("pods %v", r.Pods)
			}
			return nil
		})
		r := e.load(t, appNS, e.clients[appNS], "-n", "400", "-c", "8", echoURL+"/canary")
		t.Logf("weights v1=%d v2=%d: status %v, errors %d, v1 %d, v2 %d", stage.w1, stage.w2, r.Status, r.Errors, r.Pods[v1], r.Pods[v2])
		if r.Errors != 0 || r.Status[200] != 400 {
			t.Errorf("weights %d/%d: status %v errors %d %v; want 400×200", stage.w1, stage.w2, r.Status, r.Errors, r.ErrorSamples)
		}
		share := 100 * r.Pods[v2] / 400
		want := stage.w2
		if share < want-10 || share > want+10 {
			t.Errorf("weights %d/%d: v2 got %d%% of the requests, want %d ± 10", stage.w1, stage.w2, share, want)
		}
	}
	e.kubectl("delete", "httproute", "-n", appNS, "echo-canary")
}

func (e *env) testFaultsAndRetries(t *testing.T) {
	policy := func(spec string) {
		e.apply(t, `apiVersion: weftmesh.io/v1alpha1
kind: TrafficPolicy
metadata: {name: echo-drill, namespace: demo}
spec:
  targetRefs: [{group: "", kind: Service, name: echo}]
`+spec)
	}
	// Fault abort 50% alone: the client sees about half of them.
	policy(`  faults:
    abort: {httpStatus: 503, percentage: 50}
`)
	eventually(t, time.Minute, "the abort applies", func() error {
		r := e.load(t, appNS, e.clients[appNS], "-n", "40", "-c", "4", echoURL+"/probe")
		if r.Status[503] == 0 {
			return fmt.Errorf("status %v", r.Status)
		}
		return nil
	})
	r := e.load(t, appNS, e.clients[appNS], "-n", "400", "-c", "8", echoURL+"/abort")
	t.Logf("abort 50%%, no retries: status %v", r.Status)
	if r.Status[503] < 140 || r.Status[503] > 260 {
		t.Errorf("abort 50%%: %d of 400 failed, want about 200", r.Status[503])
	}
	// The same abort with retries (examples/echo/drill.yaml): hidden from
	// the client.
	e.apply(t, e.example(t, "drill.yaml"))
	eventually(t, time.Minute, "retries hide the aborts", func() error {
		r := e.load(t, appNS, e.clients[appNS], "-n", "40", "-c", "4", echoURL+"/probe")
		if r.Status[200] < 38 {
			return fmt.Errorf("status %v", r.Status)
		}
		return nil
	})
	r = e.load(t, appNS, e.clients[appNS], "-n", "400", "-c", "8", echoURL+"/abort-retried")
	t.Logf("abort 50%% with 5 retries: status %v (expected failures 400/64 ≈ 6)", r.Status)
	if r.Errors != 0 || r.Status[200] < 384 {
		t.Errorf("abort 50%% with retries: status %v errors %d; want at least 384 of 400 to succeed", r.Status, r.Errors)
	}
	// A delay shows in the latency.
	policy(`  faults:
    delay: {fixedDelay: 300ms, percentage: 100}
`)
	eventually(t, time.Minute, "the delay applies", func() error {
		r := e.load(t, appNS, e.clients[appNS], "-n", "8", "-c", "8", echoURL+"/probe")
		if r.Latency.Min < 300*time.Millisecond {
			return fmt.Errorf("fastest %s", r.Latency.Min)
		}
		return nil
	})
	r = e.load(t, appNS, e.clients[appNS], "-n", "100", "-c", "20", echoURL+"/delay")
	t.Logf("delay 300ms on every request: status %v, latency %+v", r.Status, r.Latency)
	if r.Status[200] != 100 || r.Latency.P50 < 300*time.Millisecond {
		t.Errorf("delay: status %v, p50 %s; want 100×200 and p50 ≥ 300ms", r.Status, r.Latency.P50)
	}
	e.kubectl("delete", "trafficpolicy", "-n", appNS, "echo-drill")
	eventually(t, time.Minute, "the policy is gone", func() error {
		r := e.load(t, appNS, e.clients[appNS], "-n", "20", "-c", "4", echoURL+"/probe")
		if r.Status[200] != 20 || r.Latency.Max >= 300*time.Millisecond {
			return fmt.Errorf("status %v, slowest %s", r.Status, r.Latency.Max)
		}
		return nil
	})
}

func (e *env) testTraces(t *testing.T) {
	e.sink.Reset()
	// A request that makes a second hop: client → echo → echo.
	r, err := e.get(appNS, e.clients[appNS], "-H", "x-echo-call: "+echoURL+"/second-hop", echoURL+"/first-hop")
	if err != nil || r.Status != 200 {
		t.Fatalf("two-hop request: %v %+v", err, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var trace []otlpsink.Span
	err = e.sink.WaitFor(ctx, func(spans []otlpsink.Span) bool {
		trace = nil
		var id string
		for _, s := range spans {
			if s.Kind == "SERVER" && s.Attrs["url.path"] == "/second-hop" {
				id = s.TraceID
			}
		}
		if id == "" {
			return false
		}
		for _, s := range spans {
			if s.TraceID == id {
				trace = append(trace, s)
			}
		}
		return len(trace) >= 6
	})
	if err != nil {
		t.Fatalf("no complete trace of the two-hop request: %v; got %d spans", err, len(e.sink.Spans()))
	}
	kinds := map[string]int{}
	for _, s := range trace {
		kinds[s.Kind]++
	}
	t.Logf("trace %s: %d spans %v", trace[0].TraceID, len(trace), kinds)
	if kinds["CLIENT"] < 4 || kinds["SERVER"] < 2 {
		t.Errorf("trace spans by kind %v; want a CLIENT request span and attempt span per hop and a SERVER span per hop", kinds)
	}
}

func (e *env) testWeftctlAdmin(t *testing.T) {
	var out string
	var err error
	eventually(t, time.Minute, "weftctl status", func() error {
		out, err = e.weftctl("status")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		if !strings.Contains(out, "SYNCED") {
			return fmt.Errorf("not SYNCED:\n%s", out)
		}
		return nil
	})
	t.Logf("weftctl status:\n%s", out)
	out, err = e.weftctl("proxy-config", e.node)
	if err != nil || !strings.Contains(out, clientID) || !strings.Contains(out, "demo/echo") || !strings.Contains(out, "spiffe://cluster.local/weft/node/"+e.node) {
		t.Errorf("weftctl proxy-config %s: %v\n%s\nwant the client's identity, Service demo/echo and the node certificate", e.node, err, out)
	}
}

func (e *env) testRollingNodeProxy(t *testing.T) {
	// Restart the node proxy while the client keeps calling, one request
	// at a time: every request that succeeds went over mTLS (the server
	// saw the client's identity); none went in plaintext.
	e.kubectl("rollout", "restart", "-n", weftNS, "daemonset/weft-node-proxy")
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		_, err := e.c.Kubectl(ctx, "rollout", "status", "-n", weftNS, "daemonset/weft-node-proxy", "--timeout=3m")
		done <- err
	}()
	var ok, failed int
	for rolling := true; rolling; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("rollout: %v", err)
			}
			rolling = false
		default:
		}
		r, err := e.get(appNS, e.clients[appNS], "--timeout", "3s", echoURL+"/rolling")
		switch {
		case err != nil || r.Status != 200:
			failed++
		case r.Reply == nil || r.Reply.Identity != clientID:
			t.Errorf("during the node proxy restart a request reached echo without mTLS: %+v", r.Reply)
		default:
			ok++
		}
	}
	t.Logf("during the rollout: %d requests over mTLS, %d refused or failed (fail closed), none in plaintext", ok, failed)
	eventually(t, 2*time.Minute, "traffic recovers after the rollout", func() error {
		r := e.load(t, appNS, e.clients[appNS], "-n", "100", "-c", "4", echoURL+"/after")
		if r.Status[200] != 100 {
			return fmt.Errorf("status %v errors %v", r.Status, r.ErrorSamples)
		}
		return nil
	})
	res, err := e.get(appNS, e.clients[appNS], echoURL+"/after")
	if err != nil || res.Reply == nil || res.Reply.Identity != clientID {
		t.Errorf("after the rollout: %v %+v; want mTLS with the client's identity", err, res)
	}
}

func (e *env) testUninstall(t *testing.T) {
	if out, err := e.run(5*time.Minute, e.helm, "uninstall", "weft", "--namespace", weftNS, "--wait", "--timeout", "3m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	eventually(t, 2*time.Minute, "the node proxy pods are gone", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := e.c.Kubectl(ctx, "get", "pods", "-n", weftNS, "-o", "name")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != "" {
			return errors.New(out)
		}
		return nil
	})
	conf, err := e.conflist()
	if err != nil || strings.Contains(conf, "weft-cni") {
		t.Errorf("after uninstall the conflist still names weft-cni (%v):\n%s", err, conf)
	}
	// The Gateway API CRDs stay (resource-policy keep), with the routes.
	if _, err := e.c.Kubectl(context.Background(), "get", "crd", "httproutes.gateway.networking.k8s.io"); err != nil {
		t.Errorf("the HTTPRoute CRD went with the release: %v", err)
	}
	// Restarted pods work unmeshed: no capture, no identity.
	for _, d := range []string{"echo-v1", "echo-v2", "client"} {
		e.kubectl("rollout", "restart", "-n", appNS, "deployment/"+d)
	}
	for _, d := range []string{"echo-v1", "echo-v2", "client"} {
		e.kubectl("rollout", "status", "-n", appNS, "deployment/"+d, "--timeout=3m")
	}
	client := e.pod(t, appNS, "app=client")
	eventually(t, 2*time.Minute, "restarted pods talk unmeshed", func() error {
		r, err := e.get(appNS, client, "--timeout", "3s", echoURL+"/unmeshed")
		if err != nil {
			return err
		}
		if r.Status != 200 || r.Reply == nil {
			return fmt.Errorf("status %d", r.Status)
		}
		if r.Reply.Identity != "" {
			return fmt.Errorf("caller identity %q after uninstall", r.Reply.Identity)
		}
		return nil
	})
	// And the plain client reaches them too.
	if r, err := e.get(plainNS, e.clients[plainNS], "--timeout", "3s", echoURL+"/plain"); err != nil || r.Status != 200 {
		t.Errorf("plain client after uninstall: %v %+v", err, r)
	}
}
