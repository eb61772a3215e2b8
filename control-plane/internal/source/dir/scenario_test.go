package dir

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// scenario is shared with the source/kube integration test, which loads
// the same objects into a real apiserver and expects the same model.
const scenario = "../testdata/scenario"

// copyScenario copies the scenario files into a fresh directory the test
// may change.
func copyScenario(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	entries, err := os.ReadDir(scenario)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(scenario, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		write(t, d, e.Name(), string(b))
	}
	return d
}

func TestScenario(t *testing.T) {
	s, err := New(scenario, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if got := len(snap.Namespaces); got != 1 {
		t.Errorf("%d namespaces, want 1 (ServiceAccount and ConfigMap are ignored)", got)
	}
	p, ns, err := s.Pod(context.Background(), "shop", "web-1")
	if err != nil || p.IP != "10.1.0.22" || p.UID != "local-shop-web-1" || model.EnrollmentOf(ns, p) != model.Enrolled {
		t.Errorf("pod web-1 = %+v, %v; want IP 10.1.0.22, uid local-shop-web-1, enrolled", p, err)
	}
	if got := len(snap.Pods); got != 4 {
		t.Errorf("%d pods, want 4", got)
	}
	cart := snap.Services["shop/cart"]
	if cart == nil || cart.Ports[1].TargetPort != 9090 || cart.Ports[1].AppProtocol != "grpc" || cart.ClusterIPs[0] != "10.96.1.10" {
		t.Errorf("service cart = %+v; want grpc port defaulted to target 9090", cart)
	}

	// cart has a slice in the directory, so nothing is derived for it; the
	// others get derived slices, web two of them (its pods name the port
	// "http" on different numbers).
	meta := func(name, svc string) model.ObjectMeta {
		return model.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"kubernetes.io/service-name": svc}}
	}
	http := func(n int32) []model.EndpointPort {
		return []model.EndpointPort{{Name: "http", Port: n, Protocol: "TCP"}}
	}
	wantSlices := map[string]*model.EndpointSlice{
		"shop/cart-manual": {ObjectMeta: meta("cart-manual", "cart"), Service: "cart",
			Ports: []model.EndpointPort{
				{Name: "http", Port: 8080, Protocol: "TCP", AppProtocol: "http"},
				{Name: "grpc", Port: 9090, Protocol: "TCP", AppProtocol: "grpc"},
			},
			Endpoints: []model.Endpoint{
				{Addresses: []string{"10.1.0.11"}, Ready: true, NodeName: "node-a", Pod: "shop/cart-v1-0"},
				{Addresses: []string{"10.1.0.12"}, Ready: false, NodeName: "node-b", Pod: "shop/cart-v2-0"},
			}},
		"shop/cart-v1-derived": {ObjectMeta: meta("cart-v1-derived", "cart-v1"), Service: "cart-v1", Ports: http(8080),
			Endpoints: []model.Endpoint{{Addresses: []string{"10.1.0.11"}, Ready: true, NodeName: "node-a", Pod: "shop/cart-v1-0"}}},
		"shop/cart-v2-derived": {ObjectMeta: meta("cart-v2-derived", "cart-v2"), Service: "cart-v2", Ports: http(8080),
			Endpoints: []model.Endpoint{{Addresses: []string{"10.1.0.12"}, Ready: true, NodeName: "node-b", Pod: "shop/cart-v2-0"}}},
		"shop/web-derived-1": {ObjectMeta: meta("web-derived-1", "web"), Service: "web", Ports: http(8081),
			Endpoints: []model.Endpoint{{Addresses: []string{"10.1.0.21"}, Ready: true, NodeName: "node-a", Pod: "shop/web-0"}}},
		"shop/web-derived-2": {ObjectMeta: meta("web-derived-2", "web"), Service: "web", Ports: http(8082),
			Endpoints: []model.Endpoint{{Addresses: []string{"10.1.0.22"}, Ready: false, NodeName: "node-b", Pod: "shop/web-1"}}},
	}
	if d := cmp.Diff(wantSlices, snap.EndpointSlices, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("EndpointSlices (-want +got):\n%s", d)
	}

	split := snap.Routes[model.RouteKey(model.HTTPRoute, "shop", "cart-split")]
	if split == nil || len(split.Rules) != 2 {
		t.Fatalf("HTTPRoute cart-split = %+v, want 2 rules", split)
	}
	if b := split.Rules[0].Backends; len(b) != 2 || b[0].Weight != 90 || b[1].Weight != 10 || b[1].Namespace != "shop" {
		t.Errorf("cart-split backends = %+v, want cart-v1 90 and cart-v2 10 in shop", b)
	}
	if r := split.Rules[1]; r.Backends[0].Weight != 1 || r.Matches[0].Path.Value != "/" {
		t.Errorf("cart-split rule 1 = %+v, want weight 1 and the default match", r)
	}
	if !split.Parents[0].IsService() || split.Rules[0].Timeouts.Request != 10*time.Second || split.Rules[0].Retry.Attempts != 2 {
		t.Errorf("cart-split = %+v", split)
	}
	if g := snap.Routes[model.RouteKey(model.GRPCRoute, "shop", "cart-grpc")]; g == nil || g.Rules[0].Matches[0].GRPCMethod != "Checkout" {
		t.Errorf("GRPCRoute cart-grpc = %+v", g)
	}
	tp := snap.TrafficPolicies["shop/cart-resilience"]
	if tp == nil || tp.Retry.BudgetPercent != 20 || tp.Retry.BudgetMinPerSecond != 5 || tp.Faults.AbortGRPCCode != 14 ||
		tp.LoadBalancer != model.LBP2CPeakEWMA || tp.Targets[0].SectionName != "http" {
		t.Errorf("TrafficPolicy cart-resilience = %+v", tp)
	}
	if ap := snap.AuthorizationPolicies["shop/cart-from-web"]; ap == nil || ap.Action != model.AuthzAllow || ap.Rules[0].To[0].Ports[0] != 8080 {
		t.Errorf("AuthorizationPolicy cart-from-web = %+v", ap)
	}
}

// waitChanged waits for ch to close, failing the test after a while.
func waitChanged(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no change notification within 10s")
	}
}

func TestChangeIsNoticed(t *testing.T) {
	d := copyScenario(t)
	s, err := New(d, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, 5*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	before := s.Snapshot()
	changed := s.Changed()
	routes, err := os.ReadFile(filepath.Join(d, "30-routes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, d, "30-routes.yaml", strings.Replace(string(routes), "weight: 90", "weight: 50", 1))
	waitChanged(t, changed)

	key := model.RouteKey(model.HTTPRoute, "shop", "cart-split")
	if w := s.Snapshot().Routes[key].Rules[0].Backends[0].Weight; w != 50 {
		t.Errorf("after the edit weight = %d, want 50", w)
	}
	if w := before.Routes[key].Rules[0].Backends[0].Weight; w != 90 {
		t.Errorf("the earlier snapshot changed: weight %d, want 90", w)
	}

	// A new file with a pod for web is noticed too, and web's derived
	// slices follow.
	changed = s.Changed()
	write(t, d, "50-more.yaml", `apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop, labels: {app: web}}
spec: {nodeName: node-c, containers: [{name: app, ports: [{name: http, containerPort: 8081}]}]}
status: {podIP: 10.1.0.23}
`)
	waitChanged(t, changed)
	if eps := s.Snapshot().EndpointSlices["shop/web-derived-1"].Endpoints; len(eps) != 2 || eps[1].Pod != "shop/web-2" {
		t.Errorf("web-derived-1 endpoints = %+v, want web-0 and web-2", eps)
	}

	// Deleting the file takes the pod away again.
	changed = s.Changed()
	if err := os.Remove(filepath.Join(d, "50-more.yaml")); err != nil {
		t.Fatal(err)
	}
	waitChanged(t, changed)
	if _, ok := s.Snapshot().Pods["shop/web-2"]; ok {
		t.Error("pod web-2 is still there after its file was removed")
	}
}

func TestBrokenObjectKeepsLastGoodState(t *testing.T) {
	d := copyScenario(t)
	s, err := New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	good := s.Snapshot()
	changed := s.Changed()
	routes, err := os.ReadFile(filepath.Join(d, "30-routes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Break the HTTPRoute's timeout (its document starts on line 1) and the
	// GRPCRoute's backend weight (line 22): both are reported.
	broken := strings.Replace(string(routes), "request: 10s", "request: 10 s", 1)
	broken = strings.Replace(broken, "- {name: cart-v2, port: 9090}", "- {name: cart-v2, port: 9090, weight: -1}", 1)
	write(t, d, "30-routes.yaml", broken)
	ok, err := s.Reload()
	if err == nil || ok {
		t.Fatalf("Reload = %v, %v; want an error and no change", ok, err)
	}
	for _, want := range []string{
		`30-routes.yaml:1: HTTPRoute shop/cart-split: spec.rules[0].timeouts.request: invalid duration "10 s"`,
		`30-routes.yaml:22: GRPCRoute shop/cart-grpc: spec.rules[0].backendRefs[0].weight: -1 is out of range`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\ndoes not contain %q", err, want)
		}
	}
	if s.Snapshot() != good || s.LastError() == nil {
		t.Error("a broken reload replaced the snapshot or left no LastError")
	}
	select {
	case <-changed:
		t.Error("a broken reload signalled a change")
	default:
	}
	write(t, d, "30-routes.yaml", string(routes))
	if ok, err := s.Reload(); !ok || err != nil || s.LastError() != nil {
		t.Fatalf("Reload after the fix = %v, %v (LastError %v)", ok, err, s.LastError())
	}
	select {
	case <-changed:
	default:
		t.Error("the fix installed a new state but did not signal a change")
	}
}

func TestKindsAndVersions(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"old route version", "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: HTTPRoute\nmetadata: {name: a}\n",
			"x.yaml:1: HTTPRoute: apiVersion gateway.networking.k8s.io/v1beta1 is not supported, use gateway.networking.k8s.io/v1"},
		{"unknown field in a policy", "apiVersion: weftmesh.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: a}\nspec: {retries: {}}\n",
			`x.yaml:1: error unmarshaling JSON: while decoding JSON: json: unknown field "retries"`},
		{"duplicate route", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a}\n---\n" +
			"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: a, namespace: default}\n",
			"x.yaml:5: HTTPRoute default/a defined twice (first at "},
		{"slice without service", "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: a}\naddressType: IPv4\nendpoints: []\n",
			"x.yaml:1: EndpointSlice default/a: metadata.labels: missing kubernetes.io/service-name"},
		{"no name", "apiVersion: v1\nkind: Service\nmetadata: {namespace: a}\n", "x.yaml:1: Service has no metadata.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			write(t, d, "x.yaml", tc.content)
			_, err := New(d, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	// Kinds the mesh does not read, and kinds of the same name in other API
	// groups, are ignored.
	d := t.TempDir()
	write(t, d, "x.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\n"+
		"apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: a}\nspec: {template: {}}\n---\n"+
		"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: a}\n")
	s, err := New(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.Snapshot().Services); n != 0 {
		t.Errorf("%d services from other API groups, want 0", n)
	}
}
