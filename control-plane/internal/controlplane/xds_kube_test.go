package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/tests/kube"
)

// meshFixture creates an enrolled namespace with two Services (v1, v2) and a
// canary HTTPRoute on v1 splitting 90/10, plus an HTTPRoute whose backend
// does not exist.
func meshFixture(t *testing.T, ctx context.Context, cs kubernetes.Interface, gw gwclient.Interface, ns string) *gwapiv1.HTTPRoute {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Annotations: map[string]string{"weftmesh.io/mesh": "enabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"reviews", "reviews-v2"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 8080, AppProtocol: ptr.To("http")}}}}
		if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	svcKind, core := gwapiv1.Kind("Service"), gwapiv1.Group("")
	backend := func(name string, w int32) gwapiv1.HTTPBackendRef {
		return gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{BackendObjectReference: gwapiv1.BackendObjectReference{
			Name: gwapiv1.ObjectName(name), Port: ptr.To[gwapiv1.PortNumber](8080)}, Weight: ptr.To(w)}}
	}
	route := &gwapiv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Name: "canary"},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{Group: &core, Kind: &svcKind, Name: "reviews", Port: ptr.To[gwapiv1.PortNumber](8080)}}},
			Rules:           []gwapiv1.HTTPRouteRule{{BackendRefs: []gwapiv1.HTTPBackendRef{backend("reviews", 90), backend("reviews-v2", 10)}}}}}
	created, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, route, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	broken := route.DeepCopy()
	broken.Name = "broken"
	broken.Spec.ParentRefs[0].Name = "reviews-v2"
	broken.Spec.Rules[0].BackendRefs = []gwapiv1.HTTPBackendRef{backend("does-not-exist", 1)}
	if _, err := gw.GatewayV1().HTTPRoutes(ns).Create(ctx, broken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return created
}

// xdsClient is a delta ADS client holding a node SVID signed by the CA.
type xdsClient struct {
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
}

func newXDSClient(t *testing.T, ctx context.Context, addr, node string, ca *certs.CA) *xdsClient {
	t.Helper()
	tc := tlsconfig.MTLSClientConfig(certstest.NodeSVID(t, ca, node), ca.Bundle(),
		tlsconfig.AuthorizeID(certs.ControlPlaneID(ca.TrustDomain())))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &xdsClient{stream: stream, node: &corev3.Node{Id: node}}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: c.node, TypeUrl: resourcev3.RouteType}); err != nil {
		t.Fatal(err)
	}
	return c
}

// weights waits for the next version of RouteConfiguration name and returns
// the weights of its first weighted route by cluster.
func (c *xdsClient) weights(t *testing.T, name string) map[string]uint32 {
	t.Helper()
	for {
		resp, err := c.stream.Recv()
		if err != nil {
			t.Fatalf("xDS stream: %v", err)
		}
		if err := c.stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: c.node, TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.GetResources() {
			if r.GetName() != name {
				continue
			}
			var rc routev3.RouteConfiguration
			if err := r.GetResource().UnmarshalTo(&rc); err != nil {
				t.Fatal(err)
			}
			out := map[string]uint32{}
			for _, vh := range rc.GetVirtualHosts() {
				for _, rt := range vh.GetRoutes() {
					for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
						out[wc.GetName()] = wc.GetWeight().GetValue()
					}
				}
			}
			return out
		}
	}
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestWeightChangeReachesDeltaClient(t *testing.T) {
	c := kube.Require(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.ApplyChartCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	cs, gw := c.Clientset(), gwclient.NewForConfigOrDie(c.Config)
	ensureNamespace(t, ctx, cs, "weft-system")
	meshFixture(t, ctx, cs, gw, "xds")
	cp := startControlPlane(t, ctx)

	client := newXDSClient(t, ctx, cp.Addr().String(), "node-a", cp.Authority().CA())
	name := "reviews.xds.svc.cluster.local:8080"
	v1, v2 := "outbound|8080||reviews.xds.svc.cluster.local", "outbound|8080||reviews-v2.xds.svc.cluster.local"
	if got := client.weights(t, name); got[v1] != 90 || got[v2] != 10 {
		t.Fatalf("initial weights = %v, want 90/10", got)
	}
	route, err := gw.GatewayV1().HTTPRoutes("xds").Get(ctx, "canary", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	route.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](50)
	route.Spec.Rules[0].BackendRefs[1].Weight = ptr.To[int32](50)
	if _, err := gw.GatewayV1().HTTPRoutes("xds").Update(ctx, route, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := client.weights(t, name); got[v1] != 50 || got[v2] != 50 {
		t.Fatalf("weights after the change = %v, want 50/50", got)
	}
}

func ensureNamespace(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestStatusAndLeaderElection runs two replicas: one becomes leader, the
// routes get their status written once, with the parentRef exactly as
// written and the current generation; when the leader stops, the other
// takes over.
func TestStatusAndLeaderElection(t *testing.T) {
	c := kube.Require(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.ApplyChartCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	cs, gw := c.Clientset(), gwclient.NewForConfigOrDie(c.Config)
	ensureNamespace(t, ctx, cs, "weft-system")
	route := meshFixture(t, ctx, cs, gw, "status")

	// Count status writes to the canary route from now on.
	w, err := gw.GatewayV1().HTTPRoutes("status").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=canary",
		ResourceVersion: route.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	leaderCfg := func(id string) LeaderConfig {
		return LeaderConfig{Lease: "weft-status-test", Identity: id, LeaseDuration: 3 * time.Second,
			RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	}
	a, stopA := startReplica(t, ctx, leaderCfg("replica-a"))
	b, stopB := startReplica(t, ctx, leaderCfg("replica-b"))
	defer stopB()

	var leaderName string
	waitFor(t, ctx, "one leader", func() (bool, error) {
		la, lb := a.leader.isLeader.Load(), b.leader.isLeader.Load()
		if la && lb {
			return false, fmt.Errorf("both replicas lead")
		}
		if la {
			leaderName = "replica-a"
		}
		if lb {
			leaderName = "replica-b"
		}
		return la || lb, nil
	})
	lease, err := cs.CoordinationV1().Leases("weft-system").Get(ctx, "weft-status-test", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != leaderName {
		t.Fatalf("lease holder = %v (%v), want %s", lease.Spec.HolderIdentity, err, leaderName)
	}

	// The status appears, written once.
	var got *gwapiv1.HTTPRoute
	writes := 0
	deadline := time.After(30 * time.Second)
	for got == nil {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Modified {
				writes++
				r := ev.Object.(*gwapiv1.HTTPRoute)
				if len(r.Status.Parents) > 0 {
					got = r
				}
			}
		case <-deadline:
			t.Fatal("no status written")
		}
	}
	settle := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.ResultChan():
			if ev.Type == watch.Modified {
				writes++
			}
		case <-settle:
			done = true
		}
	}
	if writes != 1 {
		t.Errorf("the canary route was modified %d times, want exactly one status write", writes)
	}
	ps := got.Status.Parents
	if len(ps) != 1 || ps[0].ControllerName != "weftmesh.io/mesh" {
		t.Fatalf("status.parents = %+v", ps)
	}
	if diff := cmp.Diff(route.Spec.ParentRefs[0], ps[0].ParentRef); diff != "" {
		t.Errorf("parentRef in status differs from spec's (-spec +status):\n%s", diff)
	}
	for _, cond := range ps[0].Conditions {
		if cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != got.Generation {
			t.Errorf("condition %s = %s/%s gen %d, want True at generation %d", cond.Type, cond.Status, cond.Reason, cond.ObservedGeneration, got.Generation)
		}
	}
	// The route to a missing backend is accepted but its refs do not resolve.
	waitFor(t, ctx, "ResolvedRefs=False/BackendNotFound on the broken route", func() (bool, error) {
		r, err := gw.GatewayV1().HTTPRoutes("status").Get(ctx, "broken", metav1.GetOptions{})
		if err != nil || len(r.Status.Parents) == 0 {
			return false, err
		}
		for _, cond := range r.Status.Parents[0].Conditions {
			if cond.Type == "ResolvedRefs" && cond.Status == metav1.ConditionFalse && cond.Reason == "BackendNotFound" {
				return true, nil
			}
		}
		return false, nil
	})

	// A TrafficPolicy gets status.ancestors: Accepted for the Service that
	// exists, TargetNotFound for the one that does not.
	dyn := dynamic.NewForConfigOrDie(c.Config)
	gvr := v1alpha1.GroupVersion.WithResource("trafficpolicies")
	tp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "weftmesh.io/v1alpha1", "kind": "TrafficPolicy",
		"metadata": map[string]any{"name": "retries", "namespace": "status"},
		"spec": map[string]any{
			"targetRefs": []any{map[string]any{"kind": "Service", "name": "reviews"}, map[string]any{"kind": "Service", "name": "ghost"}},
			"retry":      map[string]any{"attempts": int64(3)},
		}}}
	if _, err := dyn.Resource(gvr).Namespace("status").Create(ctx, tp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "TrafficPolicy ancestors", func() (bool, error) {
		u, err := dyn.Resource(gvr).Namespace("status").Get(ctx, "retries", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		anc, _, _ := unstructured.NestedSlice(u.Object, "status", "ancestors")
		if len(anc) != 2 {
			return false, nil
		}
		got := map[string]string{}
		for _, a := range anc {
			am := a.(map[string]any)
			name, _, _ := unstructured.NestedString(am, "ancestorRef", "name")
			conds, _, _ := unstructured.NestedSlice(am, "conditions")
			if ctrl, _, _ := unstructured.NestedString(am, "controllerName"); ctrl != "weftmesh.io/mesh" || len(conds) != 1 {
				return false, fmt.Errorf("ancestor %v", am)
			}
			cm := conds[0].(map[string]any)
			got[name] = fmt.Sprintf("%s/%s", cm["status"], cm["reason"])
		}
		if got["reviews"] != "True/Accepted" || got["ghost"] != "False/TargetNotFound" {
			return false, fmt.Errorf("ancestors = %v, want reviews True/Accepted and ghost False/TargetNotFound", got)
		}
		return true, nil
	})

	// The leader stops; the other replica takes over.
	other := b
	if leaderName == "replica-b" {
		stopB()
		other = a
	} else {
		stopA()
	}
	waitFor(t, ctx, "the other replica to lead", func() (bool, error) { return other.leader.isLeader.Load(), nil })
	_ = stopA
}

func startReplica(t *testing.T, ctx context.Context, lc LeaderConfig) (*ControlPlane, func()) {
	t.Helper()
	cp, err := New(ctx, Config{
		TrustDomain: td.Name(), Listen: "127.0.0.1:0", Kube: cluster.Config,
		Namespace: "weft-system", CASecret: "weft-ca", BundleConfigMap: "weft-trust-bundle",
		NodeProxyServiceAccounts: []string{"weft-system/weft-node-proxy"}, Leader: lc,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cp.Run(runCtx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return cp, stop
}
