package xds

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

var wlA = workload{Name: "shop/cart", Node: "node-a", SpiffeID: "spiffe://cluster.local/ns/shop/sa/cart", Address: "10.1.0.5"}

func mustSnapshot(t *testing.T, res map[string][]types.Resource) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(res)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSnapshotRefusesInvalidResources(t *testing.T) {
	tests := []struct {
		name string
		res  map[string][]types.Resource
		want string
	}{
		{"wrong message for the type URL", map[string][]types.Resource{resourcev3.ListenerType: {edsCluster("c")}}, "is a envoy.config.cluster.v3.Cluster"},
		{"no name", map[string][]types.Resource{resourcev3.ClusterType: {&clusterv3.Cluster{}}}, "has no name"},
		{"no name in a Weft type", map[string][]types.Resource{workloadType: {&xdsv1.Workload{}}}, "has no name"},
		{"duplicate name", map[string][]types.Resource{resourcev3.ClusterType: {edsCluster("c"), edsCluster("c")}}, `two resources are named "c"`},
		{"nil resource", map[string][]types.Resource{resourcev3.ClusterType: {(*clusterv3.Cluster)(nil)}}, "is nil"},
		{"type URL without prefix", map[string][]types.Resource{"envoy.config.cluster.v3.Cluster": {edsCluster("c")}}, "does not start with"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSnapshot(tc.res)
			var invalid *InvalidError
			if !errors.As(err, &invalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewSnapshot error = %v, want an InvalidError containing %q", err, tc.want)
			}
		})
	}
}

func TestSnapshotVersions(t *testing.T) {
	base := mustSnapshot(t, meshResources(1, []workload{wlA}))
	again := mustSnapshot(t, meshResources(1, []workload{wlA}))
	if base.Version() != again.Version() {
		t.Errorf("equal content: versions %s and %s, want equal", base.Version(), again.Version())
	}

	// Order of resources within a type does not matter.
	two := meshResources(1, nil)
	two[resourcev3.ClusterType] = []types.Resource{edsCluster("a"), edsCluster("b")}
	swapped := meshResources(1, nil)
	swapped[resourcev3.ClusterType] = []types.Resource{edsCluster("b"), edsCluster("a")}
	if v1, v2 := mustSnapshot(t, two).Version(), mustSnapshot(t, swapped).Version(); v1 != v2 {
		t.Errorf("reordered resources: versions %s and %s, want equal", v1, v2)
	}

	// A change moves the version of its type only.
	changed := mustSnapshot(t, meshResources(2, []workload{wlA}))
	if changed.Version() == base.Version() {
		t.Error("changed endpoint: snapshot version did not change")
	}
	for _, typ := range meshTypes {
		moved := changed.GetVersion(typ) != base.GetVersion(typ)
		if want := typ == resourcev3.EndpointType; moved != want {
			t.Errorf("%s version changed = %v, want %v", typ, moved, want)
		}
	}
	if got, want := changed.GetVersionMap(resourcev3.ClusterType), base.GetVersionMap(resourcev3.ClusterType); !cmp.Equal(got, want) {
		t.Errorf("unchanged cluster resource versions differ: %v vs %v", got, want)
	}
	if changed.GetVersionMap(resourcev3.EndpointType)["echo"] == base.GetVersionMap(resourcev3.EndpointType)["echo"] {
		t.Error("changed load assignment kept its resource version")
	}

	// An absent type and an empty one look the same to clients and to the
	// snapshot version.
	empty := meshResources(1, nil)
	empty[workloadType] = nil
	if v1, v2 := mustSnapshot(t, empty).Version(), mustSnapshot(t, meshResources(1, nil)).Version(); v1 != v2 {
		t.Errorf("empty vs absent type: versions %s and %s, want equal", v1, v2)
	}
	if got := base.GetVersion(typePrefix + "weft.xds.testing.Unknown"); got != emptyVersion || got == "" {
		t.Errorf("version of an absent type = %q, want the (non-empty) empty-set version %q", got, emptyVersion)
	}
}

func TestSnapshotServesWeftTypes(t *testing.T) {
	s := mustSnapshot(t, meshResources(1, []workload{wlA}))
	got := s.GetResources(workloadType)
	if len(got) != 1 || got["shop/cart"] == nil {
		t.Fatalf("workload resources = %v, want shop/cart", got)
	}
	if v := s.GetVersionMap(workloadType)["shop/cart"]; v == "" {
		t.Error("workload has no resource version for delta")
	}
	if err := s.ConstructVersionMap(); err != nil {
		t.Fatal(err)
	}
	if got := ResourceName(wlA.message()); got != "shop/cart" {
		t.Errorf("ResourceName(workload) = %q, want shop/cart", got)
	}
}

// The snapshot never looks a type URL up, so even a message type that
// exists only at run time travels and versions like any other.
func TestSnapshotCarriesUnregisteredTypes(t *testing.T) {
	res := meshResources(1, nil)
	res[probeType] = []types.Resource{probe("p1"), probe("p2")}
	s := mustSnapshot(t, res)
	if got := slices.Sorted(maps.Keys(s.GetResources(probeType))); !slices.Equal(got, []string{"p1", "p2"}) {
		t.Errorf("probe resources = %v, want [p1 p2]", got)
	}
	if got := ResourceName(probe("p1")); got != "p1" {
		t.Errorf("ResourceName(dynamic message) = %q, want p1", got)
	}
	if s.GetVersion(probeType) == emptyVersion || len(s.GetVersionMap(probeType)) != 2 {
		t.Errorf("probe type versions: %s, %v", s.GetVersion(probeType), s.GetVersionMap(probeType))
	}
	if err := s.Consistent(); err != nil {
		t.Error(err)
	}
	b, err := s.debugJSON("n")
	if err != nil || !strings.Contains(string(b), `"p2"`) {
		t.Errorf("debug JSON: %v\n%s", err, b)
	}
}

func TestConsistent(t *testing.T) {
	hcmInline := func(routes *routev3.RouteConfiguration) *listenerv3.Listener {
		a, err := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "in", RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routes}})
		if err != nil {
			t.Fatal(err)
		}
		return &listenerv3.Listener{Name: "inline", DefaultFilterChain: &listenerv3.FilterChain{
			Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}},
		}}
	}
	apiListener := func(routeConfig string) *listenerv3.Listener {
		l := httpListener("grpc-target", routeConfig)
		l.ApiListener = &listenerv3.ApiListener{ApiListener: l.FilterChains[0].Filters[0].GetTypedConfig()}
		l.FilterChains = nil
		return l
	}
	withService := edsCluster("echo")
	withService.EdsClusterConfig.ServiceName = "echo-eds"

	tests := []struct {
		name   string
		change func(map[string][]types.Resource)
		want   []string // problems; nil means consistent
	}{
		{"complete", func(map[string][]types.Resource) {}, nil},
		{"route configuration missing", func(r map[string][]types.Resource) {
			delete(r, resourcev3.RouteType)
		}, []string{`listener "outbound" filter "envoy.filters.network.http_connection_manager": route configuration "outbound-routes" does not exist`}},
		{"load assignment missing", func(r map[string][]types.Resource) {
			delete(r, resourcev3.EndpointType)
		}, []string{`EDS cluster "echo" has no ClusterLoadAssignment "echo"`}},
		{"EDS service name", func(r map[string][]types.Resource) {
			r[resourcev3.ClusterType] = []types.Resource{withService}
		}, []string{`EDS cluster "echo" has no ClusterLoadAssignment "echo-eds"`}},
		{"route to a missing cluster", func(r map[string][]types.Resource) {
			r[resourcev3.RouteType] = []types.Resource{routeConfig("outbound-routes", "echo", "ghost")}
		}, []string{`route configuration "outbound-routes": cluster "ghost" does not exist`}},
		{"inline routes to a missing cluster", func(r map[string][]types.Resource) {
			r[resourcev3.ListenerType] = append(r[resourcev3.ListenerType], hcmInline(routeConfig("x", "ghost")))
		}, []string{`listener "inline" filter "hcm" inline routes: cluster "ghost" does not exist`}},
		{"API listener (proxyless gRPC) naming a missing route configuration", func(r map[string][]types.Resource) {
			r[resourcev3.ListenerType] = append(r[resourcev3.ListenerType], apiListener("grpc-routes"))
		}, []string{`listener "grpc-target" api_listener: route configuration "grpc-routes" does not exist`}},
		{"TCP proxy to a missing cluster", func(r map[string][]types.Resource) {
			r[resourcev3.ListenerType] = append(r[resourcev3.ListenerType], tcpListener("opaque", "db"))
		}, []string{`listener "opaque" filter "envoy.filters.network.tcp_proxy": cluster "db" does not exist`}},
		{"unreferenced resources are fine", func(r map[string][]types.Resource) {
			r[resourcev3.RouteType] = append(r[resourcev3.RouteType], routeConfig("spare"))
			r[resourcev3.EndpointType] = append(r[resourcev3.EndpointType], loadAssignment("spare", "10.9.9.9"))
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := meshResources(1, []workload{wlA})
			tc.change(res)
			err := mustSnapshot(t, res).Consistent()
			var got []string
			var inc *InconsistentError
			if errors.As(err, &inc) {
				got = inc.Problems
			} else if err != nil {
				t.Fatalf("Consistent() = %v, want nil or an InconsistentError", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDebugJSON(t *testing.T) {
	b, err := mustSnapshot(t, meshResources(7, []workload{wlA})).debugJSON("node-a")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Node  string
		Types map[string]struct {
			Version   string
			Resources map[string]map[string]any
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	if got.Node != "node-a" {
		t.Errorf("node = %q, want node-a", got.Node)
	}
	if w := got.Types[workloadType].Resources["shop/cart"]; w["identity"] != wlA.SpiffeID {
		t.Errorf("workload JSON = %v, want identity %s", w, wlA.SpiffeID)
	}
	if _, ok := got.Types[resourcev3.EndpointType].Resources["echo"]["endpoints"]; !ok {
		t.Errorf("load assignment JSON lacks endpoints:\n%s", b)
	}
	if !strings.Contains(string(b), "10.0.0.7") {
		t.Errorf("JSON lacks the endpoint address:\n%s", b)
	}
}
