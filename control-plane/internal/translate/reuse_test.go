package translate

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// clone copies a snapshot the way a source publishes the next one: new
// maps, the same objects. A mutation then replaces the objects it changes.
func clone(s *model.Snapshot) *model.Snapshot {
	return &model.Snapshot{
		Namespaces:            maps.Clone(s.Namespaces),
		Pods:                  maps.Clone(s.Pods),
		Services:              maps.Clone(s.Services),
		EndpointSlices:        maps.Clone(s.EndpointSlices),
		Routes:                maps.Clone(s.Routes),
		TrafficPolicies:       maps.Clone(s.TrafficPolicies),
		AuthorizationPolicies: maps.Clone(s.AuthorizationPolicies),
	}
}

// Next gives exactly what NewMesh gives, whatever changed.
func TestNextEqualsNewMesh(t *testing.T) {
	const services = 20
	s := synthSnapshot(200, 10, services)
	opts := Options{TrustBundleRoots: [][]byte{[]byte("root-1")}}
	steps := []struct {
		name   string
		change func(s *model.Snapshot)
		opts   func(o *Options)
	}{
		{name: "nothing", change: func(*model.Snapshot) {}},
		{name: "route weight", change: func(s *model.Snapshot) {
			r := *s.Routes["HTTPRoute/ns-3/svc-3"]
			r.Rules = append([]model.RouteRule(nil), r.Rules...)
			r.Rules[0].Backends = []model.Backend{{Kind: "Service", Name: "svc-3", Port: 80, Weight: 50}, {Kind: "Service", Name: "svc-13", Port: 80, Weight: 50}}
			s.Routes["HTTPRoute/ns-3/svc-3"] = &r
		}},
		{name: "retry policy gives another Service's cluster a budget", change: func(s *model.Snapshot) {
			// svc-4's routes retry into svc-14, which has no policy of its own.
			tp := &model.TrafficPolicy{ObjectMeta: model.ObjectMeta{Namespace: "ns-4", Name: "retry"},
				Targets: []model.PolicyTarget{{Kind: "Service", Name: "svc-4"}},
				Retry:   &model.RetryPolicy{Attempts: 3, BudgetPercent: 5, BudgetMinPerSecond: 1}}
			s.TrafficPolicies[tp.Key()] = tp
		}},
		{name: "policy changed", change: func(s *model.Snapshot) {
			tp := *s.TrafficPolicies["ns-4/retry"]
			tp.OutlierDetection = &model.OutlierDetection{Consecutive5xx: 3}
			s.TrafficPolicies[tp.Key()] = &tp
		}},
		{name: "backend Service removed", change: func(s *model.Snapshot) { delete(s.Services, "ns-7/svc-7") }},
		{name: "backend Service back with another port", change: func(s *model.Snapshot) {
			svc := *synthSnapshot(0, 1, services).Services["ns-7/svc-7"]
			svc.Ports = append([]model.ServicePort(nil), svc.Ports...)
			svc.Ports[0].Port = 81
			s.Services[svc.Key()] = &svc
		}},
		{name: "pod IP and its endpoint", change: func(s *model.Snapshot) {
			pod := *s.Pods["ns-1/svc-1-21"]
			pod.IP = "10.200.0.1"
			s.Pods[pod.Key()] = &pod
			es := *s.EndpointSlices["ns-1/svc-1-x"]
			es.Endpoints = append([]model.Endpoint(nil), es.Endpoints...)
			for i := range es.Endpoints {
				if es.Endpoints[i].Pod == pod.Key() {
					es.Endpoints[i].Addresses = []string{pod.IP}
				}
			}
			s.EndpointSlices[es.Key()] = &es
		}},
		{name: "pod alone", change: func(s *model.Snapshot) {
			pod := *s.Pods["ns-2/svc-2-22"]
			pod.ServiceAccount = "other"
			s.Pods[pod.Key()] = &pod
		}},
		{name: "pod workload (its Workload and its endpoints' metadata)", change: func(s *model.Snapshot) {
			pod := *s.Pods["ns-3/svc-3-23"]
			pod.Workload = "svc-3-canary"
			s.Pods[pod.Key()] = &pod
		}},
		{name: "namespace leaves the mesh", change: func(s *model.Snapshot) {
			s.Namespaces["ns-4"] = &model.Namespace{Name: "ns-4"}
		}},
		{name: "authorization policy", change: func(s *model.Snapshot) {
			ap := *s.AuthorizationPolicies["ns-0/authz-0"]
			ap.Action = model.AuthzAllow
			s.AuthorizationPolicies[ap.Key()] = &ap
		}},
		{name: "endpoint not ready", change: func(s *model.Snapshot) {
			es := *s.EndpointSlices["ns-6/svc-6-x"]
			es.Endpoints = append([]model.Endpoint(nil), es.Endpoints...)
			es.Endpoints[0].Ready = false
			s.EndpointSlices[es.Key()] = &es
		}},
		{name: "route removed", change: func(s *model.Snapshot) { delete(s.Routes, "HTTPRoute/ns-8/svc-8") }},
		{name: "trust bundle roots", change: func(*model.Snapshot) {}, opts: func(o *Options) { o.TrustBundleRoots = [][]byte{[]byte("root-2")} }},
		{name: "cluster domain", change: func(*model.Snapshot) {}, opts: func(o *Options) { o.ClusterDomain = "example.org" }},
	}
	nodes := []string{"node-0", "node-3", "node-9", "node-without-pods"}
	m := NewMesh(s, opts)
	for _, step := range steps {
		s = clone(s)
		step.change(s)
		if step.opts != nil {
			step.opts(&opts)
		}
		m = m.Next(s, opts)
		fresh := NewMesh(s, opts)
		for _, node := range nodes {
			got, want := m.Node(node), fresh.Node(node)
			for _, typ := range slices.Sorted(maps.Keys(want)) {
				if !bytes.Equal(wire(t, Resources{typ: got[typ]}), wire(t, Resources{typ: want[typ]})) {
					t.Errorf("after %q, node %s, %s: Next gives %d resources, NewMesh %d, not the same", step.name, node, typ, len(got[typ]), len(want[typ]))
				}
			}
		}
	}
}

// A change rebuilds only the resources that depend on it; the other
// messages, and the lists they all stayed in, are the previous ones.
func TestNextReusesUnchanged(t *testing.T) {
	s := synthSnapshot(200, 10, 20)
	m := NewMesh(s, Options{})
	before := m.Node("node-1")

	// svc-4 has no TrafficPolicy: its routes give no cluster a retry
	// budget.
	s = clone(s)
	r := *s.Routes["HTTPRoute/ns-4/svc-4"]
	r.Rules = append([]model.RouteRule(nil), r.Rules...)
	r.Rules[0].Backends = []model.Backend{{Kind: "Service", Name: "svc-4", Port: 80, Weight: 1}}
	s.Routes["HTTPRoute/ns-4/svc-4"] = &r
	after := m.Next(s, Options{}).Node("node-1")

	for _, typ := range []string{resource.ListenerType, resource.ClusterType, resource.EndpointType, ServiceType, WorkloadType} {
		if !sameSlice(before[typ], after[typ]) {
			t.Errorf("%s: a new list; want the previous one", typ)
		}
	}
	var rebuilt []string
	for i, rc := range after[resource.RouteType] {
		if rc != before[resource.RouteType][i] {
			rebuilt = append(rebuilt, resourceName(rc))
		}
	}
	if want := []string{"svc-4.ns-4.svc.cluster.local:80"}; fmt.Sprint(rebuilt) != fmt.Sprint(want) {
		t.Errorf("rebuilt route configurations = %v, want %v", rebuilt, want)
	}
}

func sameSlice(a, b []types.Resource) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
