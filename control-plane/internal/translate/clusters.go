package translate

import (
	"math"
	"net/netip"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

const (
	// budgetWindow is the window of Weft's retry budget; Envoy's
	// retry_budget.budget_interval is set to it.
	budgetWindow = 10 * time.Second
	// httpOptionsKey is where Envoy looks for upstream HTTP options.
	httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	// peakEwmaName names Weft's load balancer in load_balancing_policy.
	peakEwmaName = "weftmesh.io/p2c_peak_ewma"
	leastReqName = "envoy.load_balancing_policies.least_request"
)

// cluster is the Cluster of a Service port. Cluster-level settings (load
// balancing, outlier detection, connection limits, retry budget, idle
// timeout) come from the TrafficPolicies that target this Service port.
func (b *outboundBuilder) cluster(pi *portInfo) *clusterv3.Cluster {
	pol := b.ix.policyFor(pi)
	meta := &xdsv1.ClusterMetadata{Service: pi.svc.key, Port: uint32(pi.port.Port)}
	var bud *budget
	if pol.Retry != nil && pol.Retry.Attempts > 0 {
		v := budgetOf(pol.Retry)
		bud = &v
	} else if v, ok := b.routeBudgets[pi.cluster]; ok {
		bud = &v
	}
	if bud != nil {
		meta.RetryBudget = &xdsv1.RetryBudget{Percent: bud.percent, MinRetriesPerSecond: bud.minPerSecond}
	}
	var idle time.Duration
	if pol.Timeouts != nil {
		idle = pol.Timeouts.Idle
	}
	if idle > 0 {
		meta.IdleTimeout = durationpb.New(idle)
	}
	c := b.baseCluster(pi.cluster, pol.LoadBalancer, meta)
	c.CircuitBreakers = circuitBreakers(pol.ConnectionLimits, bud)
	c.OutlierDetection = outlierDetection(pol.OutlierDetection)
	if o := httpOptions(pi.protocol, idle); o != nil {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(o)}
	}
	return c
}

// invalidCluster is the empty cluster of a backend that does not resolve.
func (b *outboundBuilder) invalidCluster(name string, meta *xdsv1.ClusterMetadata) *clusterv3.Cluster {
	return b.baseCluster(name, model.LBRoundRobin, meta)
}

// baseCluster is an EDS cluster fed on the ADS stream.
func (b *outboundBuilder) baseCluster(name string, lb model.LoadBalancerAlgorithm, meta *xdsv1.ClusterMetadata) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(b.opts.ConnectTimeout),
		Metadata:             weftMetadata(meta),
	}
	switch lb {
	case model.LBRoundRobin:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	case model.LBLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	default:
		// P2C peak EWMA, Weft's default: clients that read
		// load_balancing_policy take the first entry they know (the Weft
		// proxy the first, Envoy and gRPC the second); older ones read
		// lb_policy. Both fall back to least request with two choices,
		// the same picking without the latency term.
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
			{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: peakEwmaName, TypedConfig: mustAny(&xdsv1.PeakEwmaLoadBalancer{})}},
			{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: leastReqName, TypedConfig: mustAny(&leastrequestv3.LeastRequest{
				ChoiceCount: wrapperspb.UInt32(2),
			})}},
		}}
	}
	return c
}

// circuitBreakers maps connection limits and the retry budget onto the
// DEFAULT priority thresholds. Envoy and gRPC default an absent limit to
// 1024; Weft's "unset" means unlimited, so it is written as MaxUint32.
//
// Envoy's retry budget caps *concurrent* retries at budget_percent of the
// requests active or started within budget_interval, and always allows
// min_retry_concurrency. Weft's caps retries at a percentage of the request
// rate over a 10 s window plus a number per second. With budget_interval
// set to that window the percentages agree; retries per second become
// concurrent retries, equal when a retry takes about a second.
func circuitBreakers(l *model.ConnectionLimits, bud *budget) *clusterv3.CircuitBreakers {
	limit := func(v int32) *wrapperspb.UInt32Value {
		if v <= 0 {
			return wrapperspb.UInt32(math.MaxUint32)
		}
		return wrapperspb.UInt32(uint32(v))
	}
	var lim model.ConnectionLimits
	if l != nil {
		lim = *l
	}
	t := &clusterv3.CircuitBreakers_Thresholds{
		Priority:           corev3.RoutingPriority_DEFAULT,
		MaxConnections:     limit(lim.MaxConnections),
		MaxPendingRequests: limit(lim.MaxPendingRequests),
		MaxRequests:        limit(lim.MaxRequests),
	}
	if bud != nil {
		t.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: float64(bud.percent)},
			MinRetryConcurrency: wrapperspb.UInt32(bud.minPerSecond),
			BudgetInterval:      durationpb.New(budgetWindow),
		}
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

// outlierDetection ejects on consecutive errors only: Envoy's success-rate
// ejection, on by default, is turned off, and every default Weft documents
// is written out because Envoy's differ (max_ejection_percent is 10 there).
// gRPC clients implement only success-rate and failure-percentage ejection,
// so for them this configures nothing.
func outlierDetection(od *model.OutlierDetection) *clusterv3.OutlierDetection {
	if od == nil {
		return nil
	}
	out := &clusterv3.OutlierDetection{
		Interval:             durationpb.New(orDefault(od.Interval, model.DefaultOutlierInterval)),
		BaseEjectionTime:     durationpb.New(orDefault(od.BaseEjectionTime, model.DefaultBaseEjectionTime)),
		MaxEjectionPercent:   wrapperspb.UInt32(model.DefaultMaxEjectionPercent),
		EnforcingSuccessRate: wrapperspb.UInt32(0),
	}
	if od.MaxEjectionPercent > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(min(od.MaxEjectionPercent, 100)))
	}
	if od.Consecutive5xx > 0 {
		out.Consecutive_5Xx = wrapperspb.UInt32(uint32(od.Consecutive5xx))
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(100)
	} else {
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
	}
	if od.ConsecutiveGatewayErrors > 0 {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(uint32(od.ConsecutiveGatewayErrors))
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
	}
	return out
}

// httpOptions tells Envoy which HTTP version to speak upstream (HTTP/2 for
// gRPC and h2c ports) and the idle timeout of upstream connections; nil
// when there is nothing to say.
func httpOptions(p xdsv1.Protocol, idle time.Duration) *upstreamhttpv3.HttpProtocolOptions {
	o := &upstreamhttpv3.HttpProtocolOptions{}
	switch p {
	case xdsv1.Protocol_PROTOCOL_HTTP2, xdsv1.Protocol_PROTOCOL_GRPC:
		o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
		}}
	case xdsv1.Protocol_PROTOCOL_HTTP:
		o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}}
	default:
		if idle <= 0 {
			return nil
		}
		o.UpstreamProtocolOptions = &upstreamhttpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{UseDownstreamProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
			HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
		}}
	}
	if idle > 0 {
		o.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(idle)}
	}
	return o
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// loadAssignment lists the ready endpoints of a Service port from its
// EndpointSlices: the port is found by the Service port's name (the
// EndpointSlice convention), or, for a hand-written slice with no matching
// name, the Service's numeric targetPort. Every endpoint is in one
// locality whose weight is the number of endpoints: a gRPC client balances
// across localities first, so per-node localities would give a node with
// one pod as much traffic as a node with ten. The node, pod and identity
// are in each endpoint's metadata instead.
func (b *outboundBuilder) loadAssignment(pi *portInfo) *endpointv3.ClusterLoadAssignment {
	type ep struct {
		addr netip.AddrPort
		text string // the address as the slice wrote it
		e    *model.Endpoint
	}
	var eps []ep
	for _, es := range b.ix.slicesBySvc[pi.svc.key] {
		port := slicePort(es, pi)
		if port <= 0 || port > 65535 {
			continue
		}
		for i := range es.Endpoints {
			e := &es.Endpoints[i]
			if !e.Ready || len(e.Addresses) == 0 {
				continue
			}
			// Kubernetes: the addresses of an endpoint are fungible; use
			// the first. Non-IP (FQDN) endpoints are not supported.
			ip, err := netip.ParseAddr(e.Addresses[0])
			if err != nil {
				continue
			}
			eps = append(eps, ep{netip.AddrPortFrom(ip, uint16(port)), e.Addresses[0], e})
		}
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: pi.cluster}
	if len(eps) == 0 {
		return cla
	}
	sort.SliceStable(eps, func(i, j int) bool { return eps[i].addr.Compare(eps[j].addr) < 0 })
	// The messages of all endpoints are allocated in a few slabs: a large
	// Service has thousands of endpoints.
	var (
		lbs      = make([]*endpointv3.LbEndpoint, 0, len(eps))
		lbSlab   = make([]endpointv3.LbEndpoint, len(eps))
		hostSlab = make([]endpointv3.LbEndpoint_Endpoint, len(eps))
		epSlab   = make([]endpointv3.Endpoint, len(eps))
		addrSlab = make([]corev3.Address, len(eps))
		wrapSlab = make([]corev3.Address_SocketAddress, len(eps))
		sockSlab = make([]corev3.SocketAddress, len(eps))
		portSlab = make([]corev3.SocketAddress_PortValue, len(eps))
	)
	for i, e := range eps {
		if i > 0 && e.addr == eps[i-1].addr {
			continue // the same address in two slices; gRPC refuses duplicates
		}
		portSlab[i].PortValue = uint32(e.addr.Port())
		sock := &sockSlab[i]
		sock.Protocol, sock.Address, sock.PortSpecifier = corev3.SocketAddress_TCP, e.text, &portSlab[i]
		wrapSlab[i].SocketAddress = sock
		addrSlab[i].Address = &wrapSlab[i]
		epSlab[i].Address = &addrSlab[i]
		hostSlab[i].Endpoint = &epSlab[i]
		lb := &lbSlab[i]
		lb.HostIdentifier, lb.HealthStatus, lb.Metadata = &hostSlab[i], corev3.HealthStatus_HEALTHY, b.endpointMetadata(e.e)
		lbs = append(lbs, lb)
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{
		Locality:            &corev3.Locality{},
		LoadBalancingWeight: wrapperspb.UInt32(uint32(len(lbs))),
		LbEndpoints:         lbs,
	}}
	return cla
}

// slicePort is the pod port a slice gives the Service port, or 0.
func slicePort(es *model.EndpointSlice, pi *portInfo) int32 {
	for _, p := range es.Ports {
		if p.Name == pi.port.Name && (p.Protocol == "" || p.Protocol == "TCP") {
			return p.Port
		}
	}
	return pi.port.TargetPort
}

// endpointMetadata says who the endpoint is (pod, node, workload) and how
// to reach it: through the tunnel, expecting the pod's SPIFFE ID, when the
// pod is enrolled; plain TCP otherwise. One message per pod and node is
// shared by all the pod's ports.
func (b *outboundBuilder) endpointMetadata(e *model.Endpoint) *corev3.Metadata {
	key := e.Pod + "\x00" + e.NodeName
	if md, ok := b.endpointMeta[key]; ok {
		return md
	}
	m := &xdsv1.EndpointMetadata{Pod: e.Pod, Node: e.NodeName}
	if pod, ok := b.ix.snap.Pods[e.Pod]; ok && e.Pod != "" {
		if m.Node == "" {
			m.Node = pod.NodeName
		}
		m.Workload = pod.Workload
		if model.EnrollmentOf(b.ix.snap.Namespaces[pod.Namespace], pod) == model.Enrolled {
			m.Identity = spiffeID(b.opts.TrustDomain, pod.Namespace, pod.ServiceAccount)
			m.Tunnel = xdsv1.Tunnel_TUNNEL_HBONE
		}
	}
	md := weftMetadata(m)
	b.endpointMeta[key] = md
	return md
}

func emptyLoadAssignment(name string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name}
}
