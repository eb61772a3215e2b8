package meshcfg_test

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/node-proxy/internal/l7/retry"
	"github.com/weftmesh/weft/node-proxy/internal/l7/route"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
)

const webListener = "web.shop.svc.cluster.local:80"

// legacyRoute is shaped like translate's route for a Service with a
// TrafficPolicy retry and abort fault (traffic-policy.txtar, "legacy").
func legacyRoute(t testing.TB) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: webCluster},
			Timeout:          durationpb.New(0),
			RetryPolicy: &routev3.RetryPolicy{
				RetryOn:    "5xx,gateway-error,reset,connect-failure,unavailable",
				NumRetries: wrapperspb.UInt32(2),
				RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
					BaseInterval: durationpb.New(25 * time.Millisecond),
					MaxInterval:  durationpb.New(250 * time.Millisecond),
				},
			},
		}},
		TypedPerFilterConfig: map[string]*anypb.Any{route.FaultFilterName: mustAny(t, &faultv3.HTTPFault{
			Abort: &faultv3.FaultAbort{
				ErrorType:  &faultv3.FaultAbort_HttpStatus{HttpStatus: 503},
				Percentage: &typev3.FractionalPercent{Numerator: 25},
			},
		})},
	}
}

// ordersRoute matches a header and has neither retry nor fault.
func ordersRoute() *routev3.Route {
	return &routev3.Route{
		Name: "HTTPRoute/shop/orders/rule/0/match/0",
		Match: &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/orders"},
			Headers: []*routev3.HeaderMatcher{{Name: "x-canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
				StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "1"}},
			}}},
		},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: webCluster},
			Timeout:          durationpb.New(3 * time.Second),
		}},
	}
}

func routeConfig(name string, routes ...*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: name, Domains: []string{"*"}, Routes: routes,
	}}}
}

// withRoutes is the mesh plus RouteConfigurations (keyed by their name).
func withRoutes(t *testing.T, rcs ...*routev3.RouteConfiguration) meshcfg.Resources {
	res := meshResources(t, nil)
	res[meshcfg.RouteType] = map[string]*anypb.Any{}
	for _, rc := range rcs {
		res[meshcfg.RouteType][rc.GetName()] = mustAny(t, rc)
	}
	return res
}

func TestBuildRoutes(t *testing.T) {
	c := build(t, withRoutes(t, routeConfig(webListener, ordersRoute(), legacyRoute(t)), routeConfig("unused:1", legacyRoute(t))))
	sp, ok := c.Service(netip.MustParseAddrPort("10.96.0.10:80"))
	if !ok || sp.Routes == nil {
		t.Fatalf("web:80: got %+v, %v; want its routes", sp, ok)
	}
	if got := sp.Routes.Table.Name(); got != webListener {
		t.Errorf("route table %q, want %q", got, webListener)
	}
	if !sp.Routes.NeedsHeaders {
		t.Error("NeedsHeaders false with a header matcher")
	}
	// The gRPC port's listener has no RouteConfiguration.
	if grpc, _ := c.Service(netip.MustParseAddrPort("10.96.0.10:9090")); grpc.Routes != nil {
		t.Errorf("web:9090: Routes %v, want nil", grpc.Routes)
	}

	rts := sp.Routes.Table.Routes()
	if len(rts) != 2 {
		t.Fatalf("%d routes, want 2", len(rts))
	}
	orders, legacy := rts[0], rts[1]
	if legacy.Name != "default" {
		t.Fatalf("second route %q, want default", legacy.Name)
	}
	p := sp.Routes.Plan(legacy)
	wantRetry := retry.Policy{Attempts: 2, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond}
	wantRetry.On, _ = retry.ParseRetryOn("5xx,gateway-error,reset,connect-failure,unavailable")
	if diff := cmp.Diff(wantRetry, p.Retry, cmp.AllowUnexported(retry.Policy{})); diff != "" {
		t.Errorf("legacy retry policy (-want +got):\n%s", diff)
	}
	if p.Fault == nil {
		t.Fatal("legacy: no fault")
	}
	hit := p.Fault.Decide(func() uint64 { return 24 })
	miss := p.Fault.Decide(func() uint64 { return 25 })
	if !hit.Abort || hit.HTTPStatus != 503 || miss.Abort {
		t.Errorf("legacy fault: draw 24 → %+v, draw 25 → %+v; want a 503 abort for 25%%", hit, miss)
	}

	// No retry policy, no fault: the zero plan.
	if p := sp.Routes.Plan(orders); p.Retry.Attempts != 0 || p.Fault != nil {
		t.Errorf("orders plan %+v, want none", p)
	}
	// A route of another table has no plan here.
	if p := sp.Routes.Plan(&route.Route{Name: "default"}); p.Retry.Attempts != 0 || p.Fault != nil {
		t.Errorf("foreign route plan %+v, want none", p)
	}

	// Without a header matcher, NeedsHeaders is false.
	c = build(t, withRoutes(t, routeConfig(webListener, legacyRoute(t))))
	if sp, _ := c.Service(netip.MustParseAddrPort("10.96.0.10:80")); sp.Routes == nil || sp.Routes.NeedsHeaders {
		t.Errorf("prefix-only routes: %+v, want NeedsHeaders false", sp.Routes)
	}
}

func TestBuildRouteErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*routev3.Route)
		want []string
	}{
		{"bad retry_on", func(r *routev3.Route) { r.GetRoute().RetryPolicy.RetryOn = "5xx,sometimes" },
			[]string{`route configuration "web.shop.svc.cluster.local:80"`, "route default: retry policy"}},
		{"backoff max below base", func(r *routev3.Route) {
			r.GetRoute().RetryPolicy.RetryBackOff.MaxInterval = durationpb.New(time.Millisecond)
		}, []string{`route configuration "web.shop.svc.cluster.local:80"`, "route default: retry policy"}},
		{"fault with upstream_cluster", func(r *routev3.Route) {
			r.TypedPerFilterConfig[route.FaultFilterName] = mustAny(t, &faultv3.HTTPFault{UpstreamCluster: "x"})
		}, []string{`route configuration "web.shop.svc.cluster.local:80"`, "route default: fault", "upstream_cluster"}},
		{"fault delay without a fixed delay", func(r *routev3.Route) {
			r.TypedPerFilterConfig[route.FaultFilterName] = mustAny(t, &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
				Percentage: &typev3.FractionalPercent{Numerator: 10},
			}})
		}, []string{`route configuration "web.shop.svc.cluster.local:80"`, "route default: fault"}},
		{"route does not compile", func(r *routev3.Route) { r.Action = nil },
			[]string{`route configuration "web.shop.svc.cluster.local:80"`}},
	}
	for _, tt := range tests {
		rt := legacyRoute(t)
		tt.edit(rt)
		_, err := meshcfg.Build(withRoutes(t, routeConfig(webListener, rt)), 1)
		if err == nil {
			t.Errorf("%s: Build succeeded", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, w)
			}
		}
	}
	// An unreadable RouteConfiguration.
	res := meshResources(t, nil)
	res[meshcfg.RouteType] = map[string]*anypb.Any{webListener: mustAny(t, &xdsv1.Service{Name: "x"})}
	if _, err := meshcfg.Build(res, 1); err == nil || !strings.Contains(err.Error(), `route configuration "web.shop.svc.cluster.local:80"`) {
		t.Errorf("wrong type: got %v", err)
	}
}

func policyOf(t *testing.T, c *clusterv3.Cluster, meta *xdsv1.ClusterMetadata) (meshcfg.ClusterPolicy, error) {
	t.Helper()
	if meta != nil {
		c.Metadata = weftMetadata(t, meta)
	}
	res := meshResources(t, nil)
	res[meshcfg.ClusterType][webCluster] = mustAny(t, c)
	cfg, err := meshcfg.Build(res, 1)
	if err != nil {
		return meshcfg.ClusterPolicy{}, err
	}
	cl, ok := cfg.Cluster(webCluster)
	if !ok {
		t.Fatal("no web cluster")
	}
	return cl.Policy, nil
}

func extension(t *testing.T, name string, m proto.Message) *clusterv3.LoadBalancingPolicy_Policy {
	return &clusterv3.LoadBalancingPolicy_Policy{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: name, TypedConfig: mustAny(t, m)}}
}

// goodOutlier is what translate emits for consecutive 5xx detection.
func goodOutlier() *clusterv3.OutlierDetection {
	return &clusterv3.OutlierDetection{
		Consecutive_5Xx:                    wrapperspb.UInt32(5),
		Interval:                           durationpb.New(5 * time.Second),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(0),
	}
}

func TestClusterPolicy(t *testing.T) {
	defaults := meshcfg.ClusterPolicy{LB: meshcfg.LBRoundRobin, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}
	tests := []struct {
		name string
		edit func(*clusterv3.Cluster)
		meta *xdsv1.ClusterMetadata
		want meshcfg.ClusterPolicy
	}{
		{"defaults", func(*clusterv3.Cluster) {}, nil, defaults},
		{"defaults with metadata", func(*clusterv3.Cluster) {}, &xdsv1.ClusterMetadata{Service: "shop/web", Port: 80}, defaults},
		{"round robin", func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN }, nil, defaults},
		{"random falls back to round robin", func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_RANDOM }, nil, defaults},
		{"least request", func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST }, nil,
			meshcfg.ClusterPolicy{LB: meshcfg.LBLeastRequest, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"least request with choice count", func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
				ChoiceCount: wrapperspb.UInt32(3),
			}}
		}, nil, meshcfg.ClusterPolicy{LB: meshcfg.LBLeastRequest, LBChoices: 3, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"peak EWMA first", func(c *clusterv3.Cluster) {
			c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
				extension(t, "weftmesh.io/p2c_peak_ewma", &xdsv1.PeakEwmaLoadBalancer{ChoiceCount: 3, Decay: durationpb.New(5 * time.Second)}),
				extension(t, "envoy.load_balancing_policies.least_request", &leastrequestv3.LeastRequest{}),
			}}
		}, nil, meshcfg.ClusterPolicy{LB: meshcfg.LBPeakEWMA, LBChoices: 3, LBDecay: 5 * time.Second, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"peak EWMA defaults", func(c *clusterv3.Cluster) {
			c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
				extension(t, "weftmesh.io/p2c_peak_ewma", &xdsv1.PeakEwmaLoadBalancer{}),
			}}
		}, nil, meshcfg.ClusterPolicy{LB: meshcfg.LBPeakEWMA, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"least request extension", func(c *clusterv3.Cluster) {
			c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
				extension(t, "example.com/unknown", &leastrequestv3.LeastRequest{}),
				extension(t, "envoy.load_balancing_policies.least_request", &leastrequestv3.LeastRequest{}),
				extension(t, "weftmesh.io/p2c_peak_ewma", &xdsv1.PeakEwmaLoadBalancer{}),
			}}
		}, nil, meshcfg.ClusterPolicy{LB: meshcfg.LBLeastRequest, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"outlier detection", func(c *clusterv3.Cluster) { c.OutlierDetection = goodOutlier() }, nil,
			meshcfg.ClusterPolicy{LB: meshcfg.LBRoundRobin, Outlier: goodOutlier(), Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"unlimited circuit breakers", func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
				MaxConnections: wrapperspb.UInt32(math.MaxUint32), MaxRequests: wrapperspb.UInt32(math.MaxUint32),
				MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32), MaxRetries: wrapperspb.UInt32(math.MaxUint32),
			}}}
		}, nil, defaults},
		{"circuit breakers", func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
				{Priority: corev3.RoutingPriority_HIGH, MaxConnections: wrapperspb.UInt32(1), MaxRequests: wrapperspb.UInt32(1)},
				{MaxConnections: wrapperspb.UInt32(100), MaxRequests: wrapperspb.UInt32(200)},
			}}
		}, nil, meshcfg.ClusterPolicy{LB: meshcfg.LBRoundRobin, MaxConnections: 100, MaxRequests: 200, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}},
		{"retry budget and idle timeout", func(*clusterv3.Cluster) {}, &xdsv1.ClusterMetadata{
			Service: "shop/web", Port: 80,
			RetryBudget: &xdsv1.RetryBudget{Percent: 50, MinRetriesPerSecond: 3},
			IdleTimeout: durationpb.New(90 * time.Second),
		}, meshcfg.ClusterPolicy{LB: meshcfg.LBRoundRobin, Budget: retry.BudgetConfig{Percent: 50, MinPerSecond: 3}, IdleTimeout: 90 * time.Second}},
		{"zero idle timeout keeps the default", func(*clusterv3.Cluster) {}, &xdsv1.ClusterMetadata{
			Service: "shop/web", Port: 80, IdleTimeout: durationpb.New(0),
		}, defaults},
	}
	for _, tt := range tests {
		c := edsCluster(t, webCluster, nil)
		tt.edit(c)
		got, err := policyOf(t, c, tt.meta)
		if err != nil {
			t.Errorf("%s: Build: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(proto.Equal)); diff != "" {
			t.Errorf("%s: policy (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestClusterPolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*clusterv3.Cluster)
		want string
	}{
		{"success-rate outlier detection", func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(5)}
		}, "outlier_detection"},
		{"peak EWMA with the wrong type", func(c *clusterv3.Cluster) {
			c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
				extension(t, "weftmesh.io/p2c_peak_ewma", &leastrequestv3.LeastRequest{}),
			}}
		}, "load_balancing_policy weftmesh.io/p2c_peak_ewma"},
	}
	for _, tt := range tests {
		c := edsCluster(t, webCluster, nil)
		tt.edit(c)
		_, err := policyOf(t, c, nil)
		if err == nil || !strings.Contains(err.Error(), `cluster "`+webCluster+`"`) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error naming the cluster and %q", tt.name, err, tt.want)
		}
	}
}

// A load assignment whose Cluster has not arrived gets the default policy.
func TestAssignmentWithoutCluster(t *testing.T) {
	c := build(t, meshResources(t, nil))
	cl, ok := c.Cluster(dbCluster)
	if !ok {
		t.Fatal("no db cluster")
	}
	want := meshcfg.ClusterPolicy{LB: meshcfg.LBPeakEWMA, Budget: meshcfg.DefaultBudget, IdleTimeout: meshcfg.DefaultIdleTimeout}
	if diff := cmp.Diff(want, cl.Policy, cmp.Comparer(proto.Equal)); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
}

func TestBuildConsumerRoutes(t *testing.T) {
	consumer := webListener + meshcfg.ConsumerRouteSeparator + "client"
	c := build(t, withRoutes(t, routeConfig(webListener, ordersRoute()), routeConfig(consumer, legacyRoute(t))))
	sp, ok := c.Service(netip.MustParseAddrPort("10.96.0.10:80"))
	if !ok || sp.Routes == nil {
		t.Fatalf("web:80: got %+v, %v; want its routes", sp, ok)
	}
	if got := sp.RoutesFor("client").Table.Name(); got != consumer {
		t.Errorf("routes for namespace client: %q, want the consumer table %q", got, consumer)
	}
	if got := sp.RoutesFor("other").Table.Name(); got != webListener {
		t.Errorf("routes for namespace other: %q, want the producer table %q", got, webListener)
	}
}
