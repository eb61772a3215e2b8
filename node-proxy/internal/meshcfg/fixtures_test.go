package meshcfg_test

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

// The fixtures below are shaped like what control-plane/internal/translate
// sends (see docs/concepts/xds.md): names, metadata keys and nesting match,
// values are hand-picked.

const (
	webCluster     = "outbound|80||web.shop.svc.cluster.local"
	webGRPCCluster = "outbound|9090||web.shop.svc.cluster.local" // no Cluster, no CLA
	dbCluster      = "outbound|5432||db.data.svc.cluster.local"  // CLA only
	invalidCluster = "invalid|80||nope.shop.svc.cluster.local"

	webAID   = "spiffe://cluster.local/ns/shop/sa/web"
	frontID  = "spiffe://cluster.local/ns/shop/sa/frontend"
	adminID  = "spiffe://cluster.local/ns/ops/sa/admin"
	dbID     = "spiffe://cluster.local/ns/data/sa/db"
	metaKey  = "weftmesh.io"
	testNode = "node-a"
)

// mustAny packs m the way the control plane does (deterministic marshal).
func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return a
}

func weftMetadata(t testing.TB, m proto.Message) *corev3.Metadata {
	return &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{metaKey: mustAny(t, m)}}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// edsCluster is an EDS cluster fed on the ADS stream with Weft's cluster
// metadata (nil: none).
func edsCluster(t testing.TB, name string, meta *xdsv1.ClusterMetadata) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
	if meta != nil {
		c.Metadata = weftMetadata(t, meta)
	}
	return c
}

// ep is one endpoint of a load assignment; meta nil means no Weft metadata
// (an address that is not a pod).
type ep struct {
	addr string
	port uint32
	meta *xdsv1.EndpointMetadata
}

func hbone(pod, workload, node, id string) *xdsv1.EndpointMetadata {
	return &xdsv1.EndpointMetadata{Pod: pod, Workload: workload, Node: node, Identity: id, Tunnel: xdsv1.Tunnel_TUNNEL_HBONE}
}

func plain(pod, workload, node string) *xdsv1.EndpointMetadata {
	return &xdsv1.EndpointMetadata{Pod: pod, Workload: workload, Node: node}
}

func lbEndpoint(t testing.TB, e ep) *endpointv3.LbEndpoint {
	lb := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol:      corev3.SocketAddress_TCP,
				Address:       e.addr,
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: e.port},
			}}},
		}},
		HealthStatus: corev3.HealthStatus_HEALTHY,
	}
	if e.meta != nil {
		lb.Metadata = weftMetadata(t, e.meta)
	}
	return lb
}

// loadAssignment puts every endpoint in one weighted locality, as the
// control plane does.
func loadAssignment(t testing.TB, cluster string, eps ...ep) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	if len(eps) == 0 {
		return cla
	}
	var lbs []*endpointv3.LbEndpoint
	for _, e := range eps {
		lbs = append(lbs, lbEndpoint(t, e))
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{
		Locality:            &corev3.Locality{},
		LoadBalancingWeight: wrapperspb.UInt32(uint32(len(lbs))),
		LbEndpoints:         lbs,
	}}
	return cla
}

func webService() *xdsv1.Service {
	return &xdsv1.Service{
		Name:        "shop/web",
		Namespace:   "shop",
		ServiceName: "web",
		Hostname:    "web.shop.svc.cluster.local",
		Addresses:   []string{"10.96.0.10", "fd00:10:96::10"},
		Ports: []*xdsv1.ServicePort{
			{Name: "http", Port: 80, AppProtocol: "http", Protocol: xdsv1.Protocol_PROTOCOL_HTTP,
				Listener: "web.shop.svc.cluster.local:80", Cluster: webCluster},
			{Name: "grpc", Port: 9090, Protocol: xdsv1.Protocol_PROTOCOL_GRPC,
				Listener: "web.shop.svc.cluster.local:9090", Cluster: webGRPCCluster},
		},
	}
}

func dbService() *xdsv1.Service {
	return &xdsv1.Service{
		Name:        "data/db",
		Namespace:   "data",
		ServiceName: "db",
		Hostname:    "db.data.svc.cluster.local",
		// A cluster IP written as IPv4-mapped IPv6.
		Addresses: []string{"::ffff:10.96.0.20"},
		Ports: []*xdsv1.ServicePort{
			{Name: "tcp-pg", Port: 5432, Protocol: xdsv1.Protocol_PROTOCOL_TCP,
				Listener: "db.data.svc.cluster.local:5432", Cluster: dbCluster},
		},
	}
}

func headlessService() *xdsv1.Service {
	return &xdsv1.Service{
		Name: "shop/cache", Namespace: "shop", ServiceName: "cache",
		Hostname: "cache.shop.svc.cluster.local",
		Ports: []*xdsv1.ServicePort{{Name: "tcp", Port: 6379, Protocol: xdsv1.Protocol_PROTOCOL_TCP,
			Listener: "cache.shop.svc.cluster.local:6379", Cluster: "outbound|6379||cache.shop.svc.cluster.local"}},
	}
}

func workloadWebA() *xdsv1.Workload {
	return &xdsv1.Workload{
		Name:           "shop/web-a",
		Uid:            "7c1f6a52-0000-4000-8000-00000000000a",
		Namespace:      "shop",
		PodName:        "web-a",
		Workload:       "web",
		Node:           testNode,
		Addresses:      []string{"10.244.1.5"},
		Identity:       webAID,
		ServiceAccount: "web",
		Ports:          []*xdsv1.WorkloadPort{{Port: 8080, Protocol: xdsv1.Protocol_PROTOCOL_HTTP}},
		Services:       []string{"shop/web"},
		Authorization: []*xdsv1.Authorization{{
			Policy: "shop/allow-frontend",
			Action: xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_ALLOW,
			Rules: []*xdsv1.AuthorizationRule{{From: []*xdsv1.AuthorizationSource{{
				Identities: []*xdsv1.StringMatch{{Value: frontID}},
			}}}},
		}},
	}
}

func workloadFrontend() *xdsv1.Workload {
	return &xdsv1.Workload{
		Name:           "shop/frontend-0",
		Namespace:      "shop",
		PodName:        "frontend-0",
		Workload:       "frontend",
		Node:           testNode,
		Addresses:      []string{"10.244.1.9", "fd00:10:244:1::9"},
		Identity:       frontID,
		ServiceAccount: "frontend",
		InboundMode:    xdsv1.InboundMode_INBOUND_MODE_PERMISSIVE,
	}
}

// testRoots returns the DER roots of a fresh test CA.
func testRoots(t testing.TB) [][]byte {
	t.Helper()
	ca, _ := certstest.NewCA(t, nil, certs.Options{})
	return certs.BundleDER(ca.Bundle())
}

func trustBundle(roots [][]byte) *xdsv1.TrustBundle {
	td := certstest.TrustDomain.Name()
	return &xdsv1.TrustBundle{Name: td, TrustDomain: td, Roots: roots}
}

// meshResources is what node-a receives: two Services (and a headless
// one), the web cluster and its endpoints (two meshed pods, one pod not in
// the mesh, one address that is not a pod), the db endpoints whose Cluster
// has not arrived, an invalid backend, two local workloads and the trust
// bundle.
func meshResources(t testing.TB, roots [][]byte) meshcfg.Resources {
	t.Helper()
	res := meshcfg.Resources{}
	add := func(typ, name string, m proto.Message) {
		if res[typ] == nil {
			res[typ] = map[string]*anypb.Any{}
		}
		res[typ][name] = mustAny(t, m)
	}
	for _, s := range []*xdsv1.Service{webService(), dbService(), headlessService()} {
		add(meshcfg.ServiceType, s.GetName(), s)
	}
	add(meshcfg.ClusterType, webCluster, edsCluster(t, webCluster, &xdsv1.ClusterMetadata{Service: "shop/web", Port: 80}))
	add(meshcfg.ClusterType, invalidCluster, edsCluster(t, invalidCluster, &xdsv1.ClusterMetadata{
		Service: "shop/nope", Port: 80, InvalidBackend: `Service "shop/nope" not found`,
	}))
	add(meshcfg.EndpointType, webCluster, loadAssignment(t, webCluster,
		ep{"10.244.1.5", 8080, hbone("shop/web-a", "web", testNode, webAID)},
		ep{"10.244.2.7", 8080, hbone("shop/web-b", "web", "node-b", webAID)},
		ep{"10.244.3.9", 8080, plain("shop/web-legacy", "web-legacy", "node-c")},
		ep{"192.0.2.50", 80, nil},
	))
	add(meshcfg.EndpointType, invalidCluster, loadAssignment(t, invalidCluster))
	add(meshcfg.EndpointType, dbCluster, loadAssignment(t, dbCluster,
		ep{"fd00:10:244:2::4", 5432, hbone("data/db-0", "db", "node-b", dbID)},
	))
	for _, w := range []*xdsv1.Workload{workloadWebA(), workloadFrontend()} {
		add(meshcfg.WorkloadType, w.GetName(), w)
	}
	if roots != nil {
		tb := trustBundle(roots)
		add(meshcfg.TrustBundleType, tb.GetName(), tb)
	}
	return res
}
