package kube

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source/convert"
	"github.com/weftmesh/weft/control-plane/internal/source/dir"
	kubetest "github.com/weftmesh/weft/tests/kube"
)

var cluster *kubetest.Cluster

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &cluster)) }

const (
	// scenario holds objects of every kind; source/dir's tests read it too.
	scenario      = "../testdata/scenario"
	gatewayCRDDir = "../../../../charts/weft/files/gateway-api"
	// waitTimeout bounds every wait for a change notification.
	waitTimeout = 30 * time.Second
)

// startSource runs a Source against c until the test ends and waits for
// its first sync.
func startSource(t *testing.T, c *kubetest.Cluster, log *slog.Logger, recheck time.Duration) *Source {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	src, err := NewSource(SourceConfig{REST: rest.CopyConfig(c.Config), Log: log, CRDCheckInterval: recheck})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	sctx, scancel := context.WithTimeout(ctx, waitTimeout)
	defer scancel()
	if err := src.WaitForSync(sctx); err != nil {
		t.Fatalf("WaitForSync: %v", err)
	}
	return src
}

// waitFor waits until cond holds for the Snapshot, re-checking it on every
// change notification (never on a timer), and fails after waitTimeout.
func waitFor(t *testing.T, src *Source, what string, cond func(*model.Snapshot) bool) *model.Snapshot {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		changed := src.Changed()
		if snap := src.Snapshot(); cond(snap) {
			return snap
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no change notification brought %s within %v", what, waitTimeout)
		}
	}
}

// resources maps the kinds the scenario uses to their resources.
var resources = map[string]schema.GroupVersionResource{
	"Namespace":           gvrNamespaces,
	"ServiceAccount":      corev1.SchemeGroupVersion.WithResource("serviceaccounts"),
	"ConfigMap":           corev1.SchemeGroupVersion.WithResource("configmaps"),
	"Pod":                 gvrPods,
	"Service":             gvrServices,
	"EndpointSlice":       gvrEndpointSlices,
	"HTTPRoute":           gvrHTTPRoutes,
	"GRPCRoute":           gvrGRPCRoutes,
	"TrafficPolicy":       gvrTrafficPolicies,
	"AuthorizationPolicy": gvrAuthorizationPolicies,
}

// createAll creates every object in the YAML files of dir, in file order,
// as kubectl create would; a Pod's status (podIP, conditions: what a
// kubelet would report) is written afterwards through pods/status.
func createAll(t *testing.T, ctx context.Context, dyn dynamic.Interface, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if obj == nil {
				continue
			}
			u := &unstructured.Unstructured{Object: obj}
			gvr, ok := resources[u.GetKind()]
			if !ok {
				t.Fatalf("%s: no resource known for kind %s", f, u.GetKind())
			}
			status, hasStatus := obj["status"]
			var ri dynamic.ResourceInterface = dyn.Resource(gvr)
			if u.GetNamespace() != "" {
				ri = dyn.Resource(gvr).Namespace(u.GetNamespace())
			}
			created, err := ri.Create(ctx, u, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: create %s %s: %v", f, u.GetKind(), u.GetName(), err)
			}
			if hasStatus && u.GetKind() == "Pod" {
				created.Object["status"] = status
				if _, err := ri.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
					t.Fatalf("%s: status of pod %s: %v", f, u.GetName(), err)
				}
			}
		}
	}
}

// TestScenario loads the shared scenario into a real apiserver and checks
// that the Source sees every kind, that it builds the same model the dir
// source builds from the same files (so the two modes behave alike, schema
// defaults included), and that updates and deletes are noticed.
func TestScenario(t *testing.T) {
	kubetest.Require(t, cluster)
	// A cluster of its own: the scenario's namespace cannot be deleted (no
	// namespace controller runs), and -count=N must work.
	c := kubetest.StartT(t)
	ctx := t.Context()
	if err := c.ApplyChartCRDs(ctx); err != nil {
		t.Fatalf("apply CRDs: %v", err)
	}
	src := startSource(t, c, nil, 0)
	dyn := dynamic.NewForConfigOrDie(rest.CopyConfig(c.Config))
	createAll(t, ctx, dyn, scenario)

	// A slice without the service-name label passes the apiserver but not
	// conversion: it is left out, and everything else still works.
	cs := c.Clientset()
	if _, err := cs.DiscoveryV1().EndpointSlices("shop").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "shop"}, AddressType: discoveryv1.AddressTypeIPv4,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	splitKey := model.RouteKey(model.HTTPRoute, "shop", "cart-split")
	snap := waitFor(t, src, "every scenario object", func(s *model.Snapshot) bool {
		return s.Namespaces["shop"] != nil && len(inShop(s.Pods)) == 4 && s.Pods["shop/web-1"].IP != "" &&
			s.Pods["shop/cart-v2-0"].IP != "" && len(inShop(s.Services)) == 4 &&
			s.EndpointSlices["shop/cart-manual"] != nil && s.Routes[splitKey] != nil &&
			s.Routes[model.RouteKey(model.GRPCRoute, "shop", "cart-grpc")] != nil &&
			s.TrafficPolicies["shop/cart-resilience"] != nil && s.AuthorizationPolicies["shop/cart-from-web"] != nil
	})
	if _, ok := snap.EndpointSlices["shop/orphan"]; ok {
		t.Error("an EndpointSlice without kubernetes.io/service-name is in the model")
	}
	if snap.Pods["shop/web-1"].UID == "" || snap.Routes[splitKey].Generation != 1 {
		t.Errorf("apiserver metadata missing: pod uid %q, route generation %d", snap.Pods["shop/web-1"].UID, snap.Routes[splitKey].Generation)
	}

	// Same files through source/dir: the same model, except what only an
	// apiserver sets (UIDs, generations, creation times, the namespace's
	// kubernetes.io/metadata.name label) and the EndpointSlices only dir
	// derives (no EndpointSlice controller runs here).
	local, err := dir.New(scenario, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := local.Snapshot()
	for k, es := range want.EndpointSlices {
		if strings.Contains(es.Name, convert.DerivedSuffix) {
			delete(want.EndpointSlices, k)
		}
	}
	got := *snap
	ns := *snap.Namespaces["shop"]
	ns.Labels = without(ns.Labels, "kubernetes.io/metadata.name")
	got.Namespaces = map[string]*model.Namespace{"shop": &ns}
	got.Pods, got.Services, got.EndpointSlices = inShop(snap.Pods), inShop(snap.Services), inShop(snap.EndpointSlices)
	opts := cmp.Options{
		cmpopts.EquateEmpty(),
		cmpopts.IgnoreFields(model.ObjectMeta{}, "UID", "Generation", "Created"),
		cmpopts.IgnoreFields(model.Pod{}, "UID"),
	}
	if d := cmp.Diff(want, &got, opts); d != "" {
		t.Errorf("kube and dir disagree on the scenario (-dir +kube):\n%s", d)
	}

	// Flagger-style weight shift: update the HTTPRoute and see the
	// notification and the new weight; the earlier Snapshot keeps the old.
	gw := gwclient.NewForConfigOrDie(rest.CopyConfig(c.Config))
	route, err := gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "cart-split", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := src.Snapshot()
	changed := src.Changed()
	route.Spec.Rules[0].BackendRefs[0].Weight = ptr[int32](40)
	route.Spec.Rules[0].BackendRefs[1].Weight = ptr[int32](60)
	if _, err := gw.GatewayV1().HTTPRoutes("shop").Update(ctx, route, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(waitTimeout):
		t.Fatal("no change notification after the HTTPRoute update")
	}
	after := waitFor(t, src, "the new weights", func(s *model.Snapshot) bool {
		b := s.Routes[splitKey].Rules[0].Backends
		return b[0].Weight == 40 && b[1].Weight == 60
	})
	if after.Routes[splitKey].Generation != 2 {
		t.Errorf("route generation after the update = %d, want 2", after.Routes[splitKey].Generation)
	}
	if w := before.Routes[splitKey].Rules[0].Backends[0].Weight; w != 90 {
		t.Errorf("the Snapshot taken before the update changed: weight %d, want 90", w)
	}

	// A status write (what the leader does) is not a change of the model.
	route, err = gw.GatewayV1().HTTPRoutes("shop").Get(ctx, "cart-split", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	route.Status.Parents = []gwapiv1.RouteParentStatus{{
		ParentRef:      gwapiv1.ParentReference{Group: ptr[gwapiv1.Group](""), Kind: ptr[gwapiv1.Kind]("Service"), Name: "cart"},
		ControllerName: "weftmesh.io/mesh",
		Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted",
			LastTransitionTime: metav1.Now(), ObservedGeneration: route.Generation}},
	}}
	pub := src.Snapshot()
	if _, err := gw.GatewayV1().HTTPRoutes("shop").UpdateStatus(ctx, route, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// One informer delivers HTTPRoute events in order: once a route created
	// after the status write is seen, the status write has been handled.
	marker := &gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "marker", Namespace: "shop"}}
	if _, err := gw.GatewayV1().HTTPRoutes("shop").Create(ctx, marker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	marked := waitFor(t, src, "the marker route", func(s *model.Snapshot) bool {
		return s.Routes[model.RouteKey(model.HTTPRoute, "shop", "marker")] != nil
	})
	if marked.Routes[splitKey] != pub.Routes[splitKey] {
		t.Error("a status-only update replaced the HTTPRoute's model object")
	}

	// Delete a Service and see it gone.
	if err := cs.CoreV1().Services("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone := waitFor(t, src, "Service shop/web deleted", func(s *model.Snapshot) bool { return s.Services["shop/web"] == nil })
	if gone.Services["shop/cart"] == nil {
		t.Error("deleting web took cart with it")
	}
}

// TestMissingCRDs starts a Source on a cluster with no Gateway API or
// weftmesh.io CRDs: it syncs and serves the core kinds, says once per kind
// that the CRD is missing, and picks a CRD up when it is installed later.
func TestMissingCRDs(t *testing.T) {
	kubetest.Require(t, cluster)
	c := kubetest.StartT(t) // a cluster of its own: CRDs are cluster-wide
	var logs lockedBuffer
	src := startSource(t, c, slog.New(slog.NewTextHandler(&logs, nil)), 50*time.Millisecond)

	cs := c.Clientset()
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "plain"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services("plain").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "plain"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, src, "a Service while CRDs are missing", func(s *model.Snapshot) bool { return s.Services["plain/svc"] != nil })

	if err := c.ApplyCRDs(ctx, gatewayCRDDir); err != nil {
		t.Fatalf("apply Gateway API CRDs: %v", err)
	}
	gw := gwclient.NewForConfigOrDie(rest.CopyConfig(c.Config))
	if _, err := gw.GatewayV1().HTTPRoutes("plain").Create(ctx, &gwapiv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: "plain"},
		Spec: gwapiv1.HTTPRouteSpec{CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{
			{Group: ptr[gwapiv1.Group](""), Kind: ptr[gwapiv1.Kind]("Service"), Name: "svc"}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	snap := waitFor(t, src, "an HTTPRoute created after its CRD was installed", func(s *model.Snapshot) bool {
		return s.Routes[model.RouteKey(model.HTTPRoute, "plain", "late")] != nil
	})
	// The schema defaults came from the apiserver: one rule, prefix "/".
	if r := snap.Routes[model.RouteKey(model.HTTPRoute, "plain", "late")]; len(r.Rules) != 1 || r.Rules[0].Matches[0].Path.Value != "/" {
		t.Errorf("late route = %+v, want the schema's default rule", r)
	}

	// The weftmesh.io kinds were checked again on every round that found
	// the route's CRD, yet reported once each.
	out := logs.String()
	for _, k := range []string{"HTTPRoute", "GRPCRoute", "TrafficPolicy", "AuthorizationPolicy"} {
		if n := strings.Count(out, "CRD is not installed; ignoring this kind until it is\" kind="+k+" "); n != 1 {
			t.Errorf("%s reported missing %d times, want once; log:\n%s", k, n, out)
		}
	}
	for _, k := range []string{"HTTPRoute", "GRPCRoute"} {
		if !strings.Contains(out, "CRD is now installed; watching it\" kind="+k) {
			t.Errorf("no log line says the %s CRD was found; log:\n%s", k, out)
		}
	}
}

// lockedBuffer is a log sink safe for concurrent writes and reads.
type lockedBuffer struct {
	mu  sync.Mutex // guards b
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func inShop[M any](m map[string]*M) map[string]*M {
	out := map[string]*M{}
	for k, v := range m {
		if strings.HasPrefix(k, "shop/") {
			out[k] = v
		}
	}
	return out
}

func without(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
