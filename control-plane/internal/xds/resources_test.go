package xds

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// probeDesc describes a message type that exists only at run time and is
// registered nowhere: the snapshot must carry even that, since it never
// looks a type URL up.
var probeDesc = func() protoreflect.MessageDescriptor {
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name:    proto.String("weft/xds/testing/probe.proto"),
		Package: proto.String("weft.xds.testing"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Probe"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name:     proto.String("name"),
				JsonName: proto.String("name"),
				Number:   proto.Int32(1),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
				Label:    descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}},
		}},
	}, nil)
	if err != nil {
		panic(err)
	}
	return fd.Messages().Get(0)
}()

const probeType = typePrefix + "weft.xds.testing.Probe"

func probe(name string) *dynamicpb.Message {
	m := dynamicpb.NewMessage(probeDesc)
	m.Set(probeDesc.Fields().ByName("name"), protoreflect.ValueOfString(name))
	return m
}

// Weft's own resource types (api/xds/v1).
const (
	workloadType    = typePrefix + "weft.xds.v1.Workload"
	trustBundleType = typePrefix + "weft.xds.v1.TrustBundle"
)

// workload is the plain form of a test workload resource.
type workload struct{ Name, Node, SpiffeID, Address string }

func (w workload) message() *xdsv1.Workload {
	ns, pod, _ := strings.Cut(w.Name, "/")
	return &xdsv1.Workload{
		Name: w.Name, Namespace: ns, PodName: pod, Node: w.Node,
		Identity: w.SpiffeID, Addresses: []string{w.Address},
	}
}

// decodeWorkload reads a workload resource off the wire.
func decodeWorkload(t *testing.T, a *anypb.Any) workload {
	t.Helper()
	if a.GetTypeUrl() != workloadType {
		t.Fatalf("resource type = %s, want %s", a.GetTypeUrl(), workloadType)
	}
	var m xdsv1.Workload
	if err := a.UnmarshalTo(&m); err != nil {
		t.Fatalf("decode workload: %v", err)
	}
	w := workload{Name: m.GetName(), Node: m.GetNode(), SpiffeID: m.GetIdentity()}
	if len(m.GetAddresses()) > 0 {
		w.Address = m.GetAddresses()[0]
	}
	return w
}

var adsSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}

func httpListener(name, routeConfig string) *listenerv3.Listener {
	hcm, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeConfig, ConfigSource: adsSource,
		}},
	})
	if err != nil {
		panic(err)
	}
	return &listenerv3.Listener{Name: name, FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}},
	}}}
}

func tcpListener(name, cluster string) *listenerv3.Listener {
	tp, err := anypb.New(&tcpproxyv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		panic(err)
	}
	return &listenerv3.Listener{Name: name, FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: tp}}},
	}}}
}

func routeConfig(name string, clusters ...string) *routev3.RouteConfiguration {
	var routes []*routev3.Route
	for _, c := range clusters {
		routes = append(routes, &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + c}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}},
		})
	}
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"}, Routes: routes}}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource},
	}
}

func loadAssignment(cluster, ip string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
			}}},
		}}}},
	}}}
}

// meshResources is what a node with the given workloads receives at model
// revision rev: one HTTP listener routing to the "echo" cluster, whose
// endpoint address changes with rev, the workloads and the trust bundle.
func meshResources(rev int, workloads []workload) map[string][]types.Resource {
	out := map[string][]types.Resource{
		resourcev3.ListenerType: {httpListener("outbound", "outbound-routes")},
		resourcev3.RouteType:    {routeConfig("outbound-routes", "echo")},
		resourcev3.ClusterType:  {edsCluster("echo")},
		resourcev3.EndpointType: {loadAssignment("echo", fmt.Sprintf("10.0.0.%d", rev))},
	}
	for _, w := range workloads {
		out[workloadType] = append(out[workloadType], w.message())
	}
	out[trustBundleType] = []types.Resource{&xdsv1.TrustBundle{Name: "cluster.local", TrustDomain: "cluster.local", Roots: [][]byte{[]byte("not really DER")}}}
	return out
}

// meshTypes are the type URLs clients subscribe to.
var meshTypes = []string{resourcev3.ClusterType, resourcev3.EndpointType, resourcev3.ListenerType, resourcev3.RouteType, workloadType, trustBundleType}
