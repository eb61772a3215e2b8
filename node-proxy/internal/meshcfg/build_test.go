package meshcfg_test

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

// equate compares the value types with unexported fields by ==.
var equate = cmpopts.EquateComparable(netip.AddrPort{}, netip.Addr{}, spiffeid.ID{})

func build(t *testing.T, res meshcfg.Resources) *meshcfg.Config {
	t.Helper()
	c, err := meshcfg.Build(res, 7)
	if err != nil {
		t.Fatalf("Build: got error %v, want none", err)
	}
	if c == nil {
		t.Fatal("Build: got nil Config and no error")
	}
	return c
}

func TestBuildService(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	webHTTP := &meshcfg.ServicePort{
		Service: "shop/web", Hostname: "web.shop.svc.cluster.local", Port: 80,
		Protocol: xdsv1.Protocol_PROTOCOL_HTTP, Listener: "web.shop.svc.cluster.local:80", Cluster: webCluster,
	}
	webGRPC := &meshcfg.ServicePort{
		Service: "shop/web", Hostname: "web.shop.svc.cluster.local", Port: 9090,
		Protocol: xdsv1.Protocol_PROTOCOL_GRPC, Listener: "web.shop.svc.cluster.local:9090", Cluster: webGRPCCluster,
	}
	db := &meshcfg.ServicePort{
		Service: "data/db", Hostname: "db.data.svc.cluster.local", Port: 5432,
		Protocol: xdsv1.Protocol_PROTOCOL_TCP, Listener: "db.data.svc.cluster.local:5432", Cluster: dbCluster,
	}
	tests := []struct {
		dst  string
		want *meshcfg.ServicePort // nil: not found
	}{
		{"10.96.0.10:80", webHTTP},
		{"10.96.0.10:9090", webGRPC},
		{"[::ffff:10.96.0.10]:80", webHTTP}, // IPv4-mapped, as a dual-stack socket reports it
		{"[fd00:10:96::10]:80", webHTTP},
		{"10.96.0.20:5432", db}, // the resource wrote the VIP IPv4-mapped
		{"[::ffff:10.96.0.20]:5432", db},
		{"10.96.0.10:443", nil},
		{"10.96.0.11:80", nil},
		{"10.244.1.5:8080", nil}, // a pod IP is not a Service
		{"[fd00:10:96::10]:9091", nil},
	}
	for _, tt := range tests {
		got, ok := c.Service(netip.MustParseAddrPort(tt.dst))
		if tt.want == nil {
			if ok {
				t.Errorf("Service(%s): got %+v, want not found", tt.dst, got)
			}
			continue
		}
		if !ok {
			t.Errorf("Service(%s): got not found, want %+v", tt.dst, tt.want)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("Service(%s) (-want +got):\n%s", tt.dst, d)
		}
	}
}

// endpointsOf returns the endpoints of cluster name as values.
func endpointsOf(t *testing.T, c *meshcfg.Config, name string) []meshcfg.Endpoint {
	t.Helper()
	cl, ok := c.Cluster(name)
	if !ok {
		t.Fatalf("Cluster(%q): got not found, want found", name)
	}
	out := []meshcfg.Endpoint{}
	for _, e := range cl.Endpoints {
		out = append(out, *e)
	}
	return out
}

func TestBuildClusterEndpoints(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	webA := spiffeid.RequireFromString(webAID)
	want := []meshcfg.Endpoint{
		{Addr: netip.MustParseAddrPort("10.244.1.5:8080"), Pod: "shop/web-a", Node: testNode, Workload: "web", Identity: webA, Tunnel: true},
		{Addr: netip.MustParseAddrPort("10.244.2.7:8080"), Pod: "shop/web-b", Node: "node-b", Workload: "web", Identity: webA, Tunnel: true},
		{Addr: netip.MustParseAddrPort("10.244.3.9:8080"), Pod: "shop/web-legacy", Node: "node-c", Workload: "web-legacy"},
		{Addr: netip.MustParseAddrPort("192.0.2.50:80")},
	}
	if d := cmp.Diff(want, endpointsOf(t, c, webCluster), equate); d != "" {
		t.Errorf("endpoints of %s (-want +got):\n%s", webCluster, d)
	}
	cl, _ := c.Cluster(webCluster)
	if cl.Name != webCluster || cl.Service != "shop/web" || cl.Invalid != "" {
		t.Errorf("Cluster(%q): got name %q service %q invalid %q, want %q, %q, %q",
			webCluster, cl.Name, cl.Service, cl.Invalid, webCluster, "shop/web", "")
	}
}

func TestClusterPickRoundRobin(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	cl, ok := c.Cluster(webCluster)
	if !ok {
		t.Fatalf("Cluster(%q): got not found, want found", webCluster)
	}
	var got []string
	for range 2 * len(cl.Endpoints) {
		e, ok := cl.Pick()
		if !ok {
			t.Fatalf("Pick: got no endpoint, want one")
		}
		got = append(got, e.Addr.String())
	}
	want := []string{
		"10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.9:8080", "192.0.2.50:80",
		"10.244.1.5:8080", "10.244.2.7:8080", "10.244.3.9:8080", "192.0.2.50:80",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Pick order (-want +got):\n%s", d)
	}
}

// TestClusterPickConcurrent checks that concurrent picks share the
// round-robin position: every endpoint is picked equally often. Run it
// with -race.
func TestClusterPickConcurrent(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	cl, _ := c.Cluster(webCluster)
	const goroutines, picks = 8, 100 // 800 picks over 4 endpoints
	var mu sync.Mutex
	counts := map[netip.AddrPort]int{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			local := map[netip.AddrPort]int{}
			for range picks {
				e, ok := cl.Pick()
				if !ok {
					t.Error("Pick: got no endpoint, want one")
					return
				}
				local[e.Addr]++
			}
			mu.Lock()
			defer mu.Unlock()
			for a, n := range local {
				counts[a] += n
			}
		})
	}
	wg.Wait()
	for _, e := range cl.Endpoints {
		if got, want := counts[e.Addr], goroutines*picks/len(cl.Endpoints); got != want {
			t.Errorf("picks of %s: got %d, want %d", e.Addr, got, want)
		}
	}
}

func TestBuildInvalidBackend(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	cl, ok := c.Cluster(invalidCluster)
	if !ok {
		t.Fatalf("Cluster(%q): got not found, want found", invalidCluster)
	}
	if want := `Service "shop/nope" not found`; cl.Invalid != want {
		t.Errorf("Invalid: got %q, want %q", cl.Invalid, want)
	}
	if cl.Service != "shop/nope" {
		t.Errorf("Service: got %q, want %q", cl.Service, "shop/nope")
	}
	if e, ok := cl.Pick(); ok {
		t.Errorf("Pick: got %+v, want no endpoint", e)
	}
}

// A Service port whose Cluster and ClusterLoadAssignment have not arrived
// resolves, and its cluster is simply absent: no error.
func TestBuildServiceWithoutCluster(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	sp, ok := c.Service(netip.MustParseAddrPort("10.96.0.10:9090"))
	if !ok {
		t.Fatal("Service(10.96.0.10:9090): got not found, want found")
	}
	if cl, ok := c.Cluster(sp.Cluster); ok {
		t.Errorf("Cluster(%q): got %+v, want not found", sp.Cluster, cl)
	}
}

// A ClusterLoadAssignment whose Cluster has not arrived still gives a
// cluster with endpoints (and no Service), and its meshed pods are known.
func TestBuildLoadAssignmentBeforeCluster(t *testing.T) {
	res := meshResources(t, testRoots(t))
	c := build(t, res)
	want := []meshcfg.Endpoint{{
		Addr: netip.MustParseAddrPort("[fd00:10:244:2::4]:5432"), Pod: "data/db-0", Node: "node-b", Workload: "db",
		Identity: spiffeid.RequireFromString(dbID), Tunnel: true,
	}}
	if d := cmp.Diff(want, endpointsOf(t, c, dbCluster), equate); d != "" {
		t.Errorf("endpoints of %s before its Cluster (-want +got):\n%s", dbCluster, d)
	}
	if cl, _ := c.Cluster(dbCluster); cl.Service != "" {
		t.Errorf("Service of %s before its Cluster: got %q, want empty", dbCluster, cl.Service)
	}
	if _, ok := c.MeshedPod(netip.MustParseAddr("fd00:10:244:2::4")); !ok {
		t.Error("MeshedPod(fd00:10:244:2::4) before its Cluster: got not found, want found")
	}

	// The Cluster arrives: the next generation has both.
	res[meshcfg.ClusterType][dbCluster] = mustAny(t, edsCluster(t, dbCluster, &xdsv1.ClusterMetadata{Service: "data/db", Port: 5432}))
	c = build(t, res)
	if d := cmp.Diff(want, endpointsOf(t, c, dbCluster), equate); d != "" {
		t.Errorf("endpoints of %s after its Cluster (-want +got):\n%s", dbCluster, d)
	}
	if cl, _ := c.Cluster(dbCluster); cl.Service != "data/db" {
		t.Errorf("Service of %s after its Cluster: got %q, want %q", dbCluster, cl.Service, "data/db")
	}
}

// A Cluster without Weft metadata (as another control plane could send)
// is read with no Service.
func TestBuildClusterWithoutMetadata(t *testing.T) {
	res := meshcfg.Resources{meshcfg.ClusterType: {"plain": mustAny(t, edsCluster(t, "plain", nil))}}
	c := build(t, res)
	cl, ok := c.Cluster("plain")
	if !ok {
		t.Fatal(`Cluster("plain"): got not found, want found`)
	}
	if cl.Service != "" || cl.Invalid != "" || len(cl.Endpoints) != 0 {
		t.Errorf(`Cluster("plain"): got service %q invalid %q %d endpoints, want none`, cl.Service, cl.Invalid, len(cl.Endpoints))
	}
}

func TestBuildMeshedPod(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))
	tests := []struct {
		addr    string
		wantPod string // "": not found
	}{
		{"10.244.1.5", "shop/web-a"},
		{"::ffff:10.244.1.5", "shop/web-a"},
		{"10.244.2.7", "shop/web-b"},
		{"fd00:10:244:2::4", "data/db-0"},
		{"10.244.3.9", ""}, // an endpoint, but not meshed: plain TCP
		{"192.0.2.50", ""}, // not a pod
		{"10.244.9.9", ""},
	}
	for _, tt := range tests {
		got, ok := c.MeshedPod(netip.MustParseAddr(tt.addr))
		switch {
		case tt.wantPod == "" && ok:
			t.Errorf("MeshedPod(%s): got %+v, want not found", tt.addr, got)
		case tt.wantPod != "" && !ok:
			t.Errorf("MeshedPod(%s): got not found, want %s", tt.addr, tt.wantPod)
		case ok && (got.Pod != tt.wantPod || !got.Tunnel || got.Identity.IsZero()):
			t.Errorf("MeshedPod(%s): got pod %q tunnel %v identity %q, want %q, true and an identity",
				tt.addr, got.Pod, got.Tunnel, got.Identity, tt.wantPod)
		}
	}
}

func TestBuildWorkloads(t *testing.T) {
	c := build(t, meshResources(t, testRoots(t)))

	var names []string
	for _, w := range c.Workloads() {
		names = append(names, w.GetName())
	}
	if d := cmp.Diff([]string{"shop/frontend-0", "shop/web-a"}, names); d != "" {
		t.Errorf("Workloads (-want +got):\n%s", d)
	}

	w, ok := c.Workload("shop/web-a")
	if !ok {
		t.Fatal(`Workload("shop/web-a"): got not found, want found`)
	}
	if got, want := w.Identity, spiffeid.RequireFromString(webAID); got != want {
		t.Errorf("Identity: got %s, want %s", got, want)
	}
	if d := cmp.Diff([]netip.Addr{netip.MustParseAddr("10.244.1.5")}, w.Addrs, equate); d != "" {
		t.Errorf("Addrs (-want +got):\n%s", d)
	}
	if got, want := w.GetUid(), workloadWebA().GetUid(); got != want {
		t.Errorf("Uid: got %q, want %q", got, want)
	}
	if got, want := w.GetWorkload(), "web"; got != want {
		t.Errorf("GetWorkload: got %q, want %q", got, want)
	}
	for port, want := range map[uint16]bool{8080: true, 9090: false} {
		if got := w.HTTPPort(port); got != want {
			t.Errorf("HTTPPort(%d): got %v, want %v", port, got, want)
		}
	}
	if !w.HasAddr(netip.MustParseAddr("::ffff:10.244.1.5")) {
		t.Error("HasAddr(::ffff:10.244.1.5): got false, want true")
	}
	if w.HasAddr(netip.MustParseAddr("10.244.1.9")) {
		t.Error("HasAddr(10.244.1.9): got true, want false")
	}
	for _, key := range []string{"shop/web-b", "web-a", ""} {
		if w, ok := c.Workload(key); ok {
			t.Errorf("Workload(%q): got %s, want not found", key, w.GetName())
		}
	}

	addrs := []struct {
		addr string
		want string // workload name, "" for none
	}{
		{"10.244.1.5", "shop/web-a"},
		{"::ffff:10.244.1.5", "shop/web-a"},
		{"10.244.1.9", "shop/frontend-0"},
		{"fd00:10:244:1::9", "shop/frontend-0"},
		{"10.244.2.7", ""}, // a meshed pod on another node
		{"10.96.0.10", ""},
	}
	for _, tt := range addrs {
		w, ok := c.LocalAddr(netip.MustParseAddr(tt.addr))
		got := ""
		if ok {
			got = w.GetName()
		}
		if got != tt.want {
			t.Errorf("LocalAddr(%s): got %q, want %q", tt.addr, got, tt.want)
		}
	}
}

func TestBuildTrustBundle(t *testing.T) {
	// During a root rotation the bundle holds two roots.
	roots := append(testRoots(t), testRoots(t)...)
	c := build(t, meshResources(t, roots))
	if got, want := c.TrustDomain(), certstest.TrustDomain; got != want {
		t.Errorf("TrustDomain: got %s, want %s", got, want)
	}
	b := c.Bundle()
	if b == nil {
		t.Fatal("Bundle: got nil, want the roots")
	}
	if got, want := b.TrustDomain(), certstest.TrustDomain; got != want {
		t.Errorf("Bundle().TrustDomain: got %s, want %s", got, want)
	}
	got := certs.BundleDER(b)
	if len(got) != len(roots) {
		t.Fatalf("Bundle roots: got %d, want %d", len(got), len(roots))
	}
	for i := range roots {
		if !bytes.Equal(got[i], roots[i]) {
			t.Errorf("Bundle root %d: got a different certificate than sent", i)
		}
	}
}

func TestBuildEmpty(t *testing.T) {
	for _, res := range []meshcfg.Resources{nil, {}, meshResources(t, nil)} {
		c := build(t, res)
		if c.Bundle() != nil {
			t.Errorf("Bundle with no TrustBundle: got %v, want nil", c.Bundle())
		}
		if !c.TrustDomain().IsZero() {
			t.Errorf("TrustDomain with no TrustBundle: got %s, want zero", c.TrustDomain())
		}
	}
	c := build(t, nil)
	if got := c.Workloads(); len(got) != 0 {
		t.Errorf("Workloads of nothing: got %d, want 0", len(got))
	}
	if _, ok := c.Service(netip.MustParseAddrPort("10.96.0.10:80")); ok {
		t.Error("Service of nothing: got found, want not found")
	}
}

func TestBuildKeepsVersionAndResources(t *testing.T) {
	res := meshResources(t, nil)
	c := build(t, res)
	if c.Version != 7 {
		t.Errorf("Version: got %d, want 7", c.Version)
	}
	got := c.Resources()
	if len(got) != len(res) || got[meshcfg.ServiceType]["shop/web"] != res[meshcfg.ServiceType]["shop/web"] {
		t.Errorf("Resources: got %v, want the map Build was given", got)
	}
}

func TestTypes(t *testing.T) {
	want := []string{
		"type.googleapis.com/envoy.config.listener.v3.Listener",
		"type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
		"type.googleapis.com/envoy.config.cluster.v3.Cluster",
		"type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
		"type.googleapis.com/weft.xds.v1.Workload",
		"type.googleapis.com/weft.xds.v1.Service",
		"type.googleapis.com/weft.xds.v1.TrustBundle",
	}
	if d := cmp.Diff(want, meshcfg.Types); d != "" {
		t.Errorf("Types (-want +got):\n%s", d)
	}
}
