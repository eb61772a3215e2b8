package translate

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protopath"
	"google.golang.org/protobuf/reflect/protorange"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// checkResources asserts what every translation must satisfy:
//   - go-control-plane accepts the Envoy part as a snapshot and finds it
//     Consistent (every RDS name a listener uses exists, every EDS cluster
//     has exactly its ClusterLoadAssignment);
//   - every Envoy message, including those packed in Any, passes Envoy's
//     own validation rules (protoc-gen-validate), and every Any resolves;
//   - every cluster a route sends to exists;
//   - both copies of a listener's HttpConnectionManager name the listener's
//     own RouteConfiguration, with the router filter last;
//   - names are non-empty, unique and sorted within each type;
//   - Workloads are all on the node.
func checkResources(t *testing.T, res Resources, node string) {
	t.Helper()
	// go-control-plane's check wants every RouteConfiguration referenced
	// by a listener; consumer RouteConfigurations are read by the Weft
	// proxy only (Weft's own xds.Snapshot.Consistent allows them).
	envoy := res.Envoy()
	var producer []types.Resource
	for _, r := range envoy[resource.RouteType] {
		if !strings.Contains(resourceName(r), ConsumerRouteSeparator) {
			producer = append(producer, r)
		}
	}
	envoy[resource.RouteType] = producer
	snap, err := cachev3.NewSnapshot("1", envoy)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	if err := snap.Consistent(); err != nil {
		t.Errorf("Consistent: %v", err)
	}
	for typ, l := range res {
		var names []string
		seen := map[string]bool{}
		for _, r := range l {
			n := resourceName(r)
			if n == "" || seen[n] {
				t.Errorf("%s: empty or duplicate name %q", typ, n)
			}
			seen[n] = true
			names = append(names, n)
			if err := validateDeep(r); err != nil {
				t.Errorf("%s %q: %v", typ, n, err)
			}
		}
		if !sort.StringsAreSorted(names) {
			t.Errorf("%s: names not sorted: %v", typ, names)
		}
	}
	clusters := map[string]bool{}
	for _, r := range res[resource.ClusterType] {
		clusters[r.(*clusterv3.Cluster).GetName()] = true
	}
	routes := map[string]bool{}
	for _, r := range res[resource.RouteType] {
		rc := r.(*routev3.RouteConfiguration)
		routes[rc.GetName()] = true
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, c := range routeClusters(rt) {
					if !clusters[c] {
						t.Errorf("route %s/%s sends to missing cluster %q", rc.GetName(), rt.GetName(), c)
					}
				}
			}
		}
	}
	for _, r := range res[resource.ListenerType] {
		l := r.(*listenerv3.Listener)
		if err := checkHCM(l.GetApiListener().GetApiListener(), l.GetName(), routes); err != nil {
			t.Errorf("listener %s: api_listener: %v", l.GetName(), err)
		}
		if len(l.GetFilterChains()) != 1 || len(l.GetFilterChains()[0].GetFilters()) != 1 {
			t.Errorf("listener %s: want one filter chain with one filter", l.GetName())
			continue
		}
		if err := checkHCM(l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), l.GetName(), routes); err != nil {
			t.Errorf("listener %s: filter chain: %v", l.GetName(), err)
		}
	}
	for _, r := range res[WorkloadType] {
		if w := r.(*xdsv1.Workload); w.GetNode() != node {
			t.Errorf("workload %s is on %q, translated for %q", w.GetName(), w.GetNode(), node)
		}
	}
}

func routeClusters(rt *routev3.Route) []string {
	a := rt.GetRoute()
	if a == nil {
		return nil
	}
	if c := a.GetCluster(); c != "" {
		return []string{c}
	}
	var out []string
	for _, wc := range a.GetWeightedClusters().GetClusters() {
		out = append(out, wc.GetName())
	}
	return out
}

// checkHCM checks a packed HttpConnectionManager the way a gRPC client
// reads it: RDS over ADS naming the listener's own RouteConfiguration, and
// the router filter last.
func checkHCM(a *anypb.Any, listener string, routes map[string]bool) error {
	hcm := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(hcm); err != nil {
		return err
	}
	rds := hcm.GetRds()
	if rds.GetConfigSource().GetAds() == nil {
		return fmt.Errorf("RDS config source is not ADS")
	}
	if n := rds.GetRouteConfigName(); n != listener || !routes[n] {
		return fmt.Errorf("route config %q: want %q, present", n, listener)
	}
	f := hcm.GetHttpFilters()
	if len(f) == 0 || f[len(f)-1].GetName() != wellknown.Router {
		return fmt.Errorf("router filter is not last: %v", f)
	}
	return nil
}

// validator is what protoc-gen-validate generates.
type validator interface{ ValidateAll() error }

// validateDeep validates m and every message packed in an Any inside it.
func validateDeep(m proto.Message) error {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	return protorange.Options{Stable: true}.Range(m.ProtoReflect(), func(p protopath.Values) error {
		last := p.Index(-1)
		if last.Step.Kind() == protopath.AnyExpandStep {
			if v, ok := last.Value.Message().Interface().(validator); ok {
				if err := v.ValidateAll(); err != nil {
					return fmt.Errorf("%s: %w", p.Path, err)
				}
			}
			return nil
		}
		if a, ok := last.Value.Interface().(protoreflect.Message); ok {
			if any, ok := a.Interface().(*anypb.Any); ok {
				if _, err := protoregistry.GlobalTypes.FindMessageByURL(any.GetTypeUrl()); err != nil {
					return fmt.Errorf("%s: packed type %q: %w", p.Path, any.GetTypeUrl(), err)
				}
			}
		}
		return nil
	}, nil)
}

func TestScenarioOutputsAreConsistent(t *testing.T) {
	for _, sc := range loadScenarios(t) {
		in, _ := sc.arc.file("input.yaml")
		snap, err := loadYAML(in)
		if err != nil {
			t.Fatalf("%s: %v", sc.path, err)
		}
		for _, node := range []string{sc.node, "node-b", "no-such-node"} {
			t.Run(sc.path+"/"+node, func(t *testing.T) { checkResources(t, Node(snap, node, sc.opts), node) })
		}
	}
}

func TestSyntheticOutputsAreConsistent(t *testing.T) {
	m := NewMesh(synthSnapshot(600, 20, 60), Options{TrustBundleRoots: [][]byte{testRoot(t)}})
	for _, node := range []string{"node-0", "node-7", "node-19"} {
		res := m.Node(node)
		if len(res[WorkloadType]) != 30 {
			t.Errorf("%s: got %d workloads, want 30", node, len(res[WorkloadType]))
		}
		checkResources(t, res, node)
	}
}

// TestEmptySnapshot: nothing in, every type present and empty (no roots:
// no bundle).
func TestEmptySnapshot(t *testing.T) {
	for _, s := range []*model.Snapshot{nil, model.NewSnapshot()} {
		res := Node(s, "node-a", Options{})
		for _, typ := range append(append([]string(nil), EnvoyTypes...), WorkloadType, ServiceType) {
			if l, ok := res[typ]; !ok || len(l) != 0 {
				t.Errorf("%s: got %d resources (present %v), want an empty list", typ, len(l), ok)
			}
		}
		if _, ok := res[TrustBundleType]; ok {
			t.Errorf("trust bundle present without roots")
		}
		// go-control-plane's check wants every RouteConfiguration referenced
		// by a listener; consumer RouteConfigurations are read by the Weft
		// proxy only (Weft's own xds.Snapshot.Consistent allows them).
		envoy := res.Envoy()
		var producer []types.Resource
		for _, r := range envoy[resource.RouteType] {
			if !strings.Contains(resourceName(r), ConsumerRouteSeparator) {
				producer = append(producer, r)
			}
		}
		envoy[resource.RouteType] = producer
		snap, err := cachev3.NewSnapshot("1", envoy)
		if err != nil {
			t.Fatal(err)
		}
		if err := snap.Consistent(); err != nil {
			t.Errorf("Consistent: %v", err)
		}
	}
}
