package translate

import (
	"fmt"
	"time"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// synthSnapshot builds a mesh of the given size: ten enrolled namespaces;
// Services with an HTTP and a gRPC port, spread over the namespaces; the
// pods spread over the Services and, round robin, over the nodes; an
// EndpointSlice per Service; an HTTPRoute per Service (a header canary
// split, an exact path, a catch-all), a GRPCRoute on every fourth, a
// TrafficPolicy on every third, and two AuthorizationPolicies per
// namespace.
func synthSnapshot(pods, nodes, services int) *model.Snapshot {
	const namespaces = 10
	s := model.NewSnapshot()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := 0; n < namespaces; n++ {
		name := fmt.Sprintf("ns-%d", n)
		s.Namespaces[name] = &model.Namespace{Name: name, Annotations: map[string]string{model.MeshKey: model.MeshEnabled}}
		for i, action := range []model.AuthorizationAction{model.AuthzDeny, model.AuthzAllow} {
			ap := &model.AuthorizationPolicy{
				ObjectMeta: model.ObjectMeta{Namespace: name, Name: fmt.Sprintf("authz-%d", i)},
				Action:     action,
				Rules: []model.AuthorizationRule{{
					From: []model.AuthorizationSource{{Identities: []string{"spiffe://cluster.local/ns/" + name + "/*"}, Namespaces: []string{"ns-0"}}},
					To:   []model.AuthorizationOperation{{Ports: []int32{8080}, Methods: []string{"GET"}, Paths: []string{"/api/*"}}},
				}},
			}
			if i == 1 {
				ap.Targets = []model.PolicyTarget{{Kind: "Service", Name: fmt.Sprintf("svc-%d", n), SectionName: "http"}}
			}
			s.AuthorizationPolicies[ap.Key()] = ap
		}
	}
	svcNS := func(i int) string { return fmt.Sprintf("ns-%d", i%namespaces) }
	for i := 0; i < services; i++ {
		ns, name := svcNS(i), fmt.Sprintf("svc-%d", i)
		svc := &model.Service{
			ObjectMeta: model.ObjectMeta{Namespace: ns, Name: name, Created: created},
			ClusterIPs: []string{fmt.Sprintf("10.96.%d.%d", i/250, i%250+1)},
			Type:       "ClusterIP",
			Selector:   map[string]string{"app": name},
			Ports: []model.ServicePort{
				{Name: "http", Port: 80, Protocol: "TCP", AppProtocol: "http", TargetPort: 8080},
				{Name: "grpc", Port: 9090, Protocol: "TCP", AppProtocol: "grpc", TargetPort: 9090},
			},
		}
		s.Services[svc.Key()] = svc
		s.EndpointSlices[ns+"/"+name+"-x"] = &model.EndpointSlice{
			ObjectMeta: model.ObjectMeta{Namespace: ns, Name: name + "-x"},
			Service:    name,
			Ports:      []model.EndpointPort{{Name: "http", Port: 8080, Protocol: "TCP"}, {Name: "grpc", Port: 9090, Protocol: "TCP"}},
		}
		other := fmt.Sprintf("svc-%d", (i+namespaces)%services) // same namespace
		r := &model.Route{
			ObjectMeta: model.ObjectMeta{Namespace: ns, Name: name, Created: created},
			Kind:       model.HTTPRoute,
			Parents:    []model.ParentRef{{Kind: "Service", Namespace: ns, Name: name, Port: 80}},
			Rules: []model.RouteRule{
				{
					Matches:  []model.RouteMatch{{Path: &model.StringMatch{Type: model.MatchPathPrefix, Value: "/api"}, Headers: []model.HeaderMatch{{Name: "x-canary", Type: model.MatchExact, Value: "true"}}}},
					Backends: []model.Backend{{Kind: "Service", Name: name, Port: 80, Weight: 90}, {Kind: "Service", Name: other, Port: 80, Weight: 10}},
				},
				{
					Matches:  []model.RouteMatch{{Path: &model.StringMatch{Type: model.MatchExact, Value: "/healthz"}}},
					Backends: []model.Backend{{Kind: "Service", Name: name, Port: 80, Weight: 1}},
					Timeouts: &model.RouteTimeouts{Request: time.Second},
				},
				{Backends: []model.Backend{{Kind: "Service", Name: name, Port: 80, Weight: 1}}},
			},
		}
		s.Routes[model.RouteKey(r.Kind, ns, name)] = r
		if i%4 == 0 {
			g := &model.Route{
				ObjectMeta: model.ObjectMeta{Namespace: ns, Name: name, Created: created},
				Kind:       model.GRPCRoute,
				Parents:    []model.ParentRef{{Kind: "Service", Namespace: ns, Name: name, Port: 9090}},
				Rules: []model.RouteRule{
					{Matches: []model.RouteMatch{{GRPCService: "weft.Echo", GRPCMethod: "Hello"}},
						Backends: []model.Backend{{Kind: "Service", Name: name, Port: 9090, Weight: 50}, {Kind: "Service", Name: other, Port: 9090, Weight: 50}}},
					{Backends: []model.Backend{{Kind: "Service", Name: name, Port: 9090, Weight: 1}}},
				},
			}
			s.Routes[model.RouteKey(g.Kind, ns, name)] = g
		}
		if i%3 == 0 {
			tp := &model.TrafficPolicy{
				ObjectMeta:       model.ObjectMeta{Namespace: ns, Name: name, Created: created},
				Targets:          []model.PolicyTarget{{Kind: "Service", Name: name}},
				Retry:            &model.RetryPolicy{Attempts: 2, PerTryTimeout: time.Second},
				Timeouts:         &model.TimeoutPolicy{Request: 5 * time.Second},
				Faults:           &model.FaultPolicy{AbortPercent: 1, AbortHTTP: 503},
				OutlierDetection: &model.OutlierDetection{Consecutive5xx: 5},
			}
			s.TrafficPolicies[tp.Key()] = tp
		}
	}
	for p := 0; p < pods; p++ {
		i := p % services
		ns, svcName := svcNS(i), fmt.Sprintf("svc-%d", i)
		pod := &model.Pod{
			Namespace: ns, Name: fmt.Sprintf("%s-%d", svcName, p), UID: fmt.Sprintf("uid-%d", p),
			NodeName: fmt.Sprintf("node-%d", p%nodes), ServiceAccount: svcName,
			IP: fmt.Sprintf("10.%d.%d.%d", 1+p/65536, (p/256)%256, p%256), Labels: map[string]string{"app": svcName},
			Workload: svcName,
		}
		s.Pods[pod.Key()] = pod
		es := s.EndpointSlices[ns+"/"+svcName+"-x"]
		es.Endpoints = append(es.Endpoints, model.Endpoint{Addresses: []string{pod.IP}, Ready: p%20 != 0, NodeName: pod.NodeName, Pod: pod.Key()})
	}
	return s
}
