package meshcfg

import (
	"fmt"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/node-proxy/internal/l7/fault"
	"github.com/weftmesh/weft/node-proxy/internal/l7/outlier"
	"github.com/weftmesh/weft/node-proxy/internal/l7/retry"
	"github.com/weftmesh/weft/node-proxy/internal/l7/route"
)

// Load-balancing algorithms of a cluster.
type LBKind uint8

const (
	LBPeakEWMA LBKind = iota // P2C over peak EWMA latency × in-flight (Weft's default)
	LBLeastRequest
	LBRoundRobin
)

// Names of the load_balancing_policy extensions the proxy reads.
const (
	peakEwmaPolicy     = "weftmesh.io/p2c_peak_ewma"
	leastRequestPolicy = "envoy.load_balancing_policies.least_request"
)

// DefaultBudget applies to clusters whose metadata carries no retry
// budget: retries never exceed 20% of requests plus 10 per second.
var DefaultBudget = retry.BudgetConfig{Percent: 20, MinPerSecond: 10}

// DefaultIdleTimeout closes upstream connections idle this long when the
// cluster sets none.
const DefaultIdleTimeout = time.Hour

// ClusterPolicy is what the L7 path needs of a cluster besides its
// endpoints.
type ClusterPolicy struct {
	LB        LBKind
	LBChoices int           // P2C choices (PeakEWMA, LeastRequest); 0 = 2
	LBDecay   time.Duration // PeakEWMA decay; 0 = the lb default
	// Outlier is the cluster's outlier_detection, already checked by
	// outlier.New; nil when off.
	Outlier *clusterv3.OutlierDetection
	Budget  retry.BudgetConfig
	// MaxConnections and MaxRequests are the circuit-breaker thresholds
	// (0 = unlimited).
	MaxConnections, MaxRequests uint32
	IdleTimeout                 time.Duration
}

// Routes is a compiled RouteConfiguration with the compiled retry and
// fault settings of each route.
type Routes struct {
	Table *route.Table
	// NeedsHeaders: some route matches a header, so route.Request.Header
	// must be filled.
	NeedsHeaders bool
	plans        map[*route.Route]*RoutePlan
}

// RoutePlan is the compiled per-route L7 policy.
type RoutePlan struct {
	Retry retry.Policy
	Fault *fault.Fault // nil: no fault injection
}

// NoPlan is the policy of a route without one (and of a request with no
// route): no retries, no faults. Do not modify it.
var NoPlan = &RoutePlan{}

// Plan returns the compiled policy of rt, a route of r's table.
func (r *Routes) Plan(rt *route.Route) *RoutePlan {
	if p, ok := r.plans[rt]; ok {
		return p
	}
	return NoPlan
}

func (b *builder) routeConfig(name string, a *anypb.Any) {
	var rc routev3.RouteConfiguration
	if !b.unmarshal("route configuration", name, a, &rc) {
		return
	}
	tbl, err := route.Compile(&rc)
	if err != nil {
		b.fail("route configuration", name, "%v", err)
		return
	}
	rs := &Routes{Table: tbl, NeedsHeaders: tbl.NeedsHeaders(), plans: map[*route.Route]*RoutePlan{}}
	for _, rt := range tbl.Routes() {
		p := &RoutePlan{}
		if p.Retry, err = retry.NewPolicy(rt.RetryPolicy); err != nil {
			b.fail("route configuration", name, "route %s: retry policy: %v", rt.Name, err)
			return
		}
		if rt.Fault != nil {
			if p.Fault, err = fault.Compile(rt.Fault); err != nil {
				b.fail("route configuration", name, "route %s: fault: %v", rt.Name, err)
				return
			}
		}
		rs.plans[rt] = p
	}
	if listener, ns, ok := strings.Cut(rc.GetName(), ConsumerRouteSeparator); ok {
		if b.consumer[listener] == nil {
			b.consumer[listener] = map[string]*Routes{}
		}
		b.consumer[listener][ns] = rs
		return
	}
	b.routes[rc.GetName()] = rs
}

// ConsumerRouteSeparator joins a listener name and a client namespace into
// the name of that namespace's consumer RouteConfiguration (GAMMA consumer
// routes), as the control plane's translate names it.
const ConsumerRouteSeparator = "|consumer|"

// RoutesFor returns the routes that apply to a client in namespace ns: its
// namespace's consumer routes when there are any, else the producer
// routes (nil until they arrive).
func (sp *ServicePort) RoutesFor(ns string) *Routes {
	if rs, ok := sp.Consumer[ns]; ok {
		return rs
	}
	return sp.Routes
}

// clusterPolicy reads the L7 settings of c.
func clusterPolicy(c *clusterv3.Cluster, cm *xdsv1.ClusterMetadata) (ClusterPolicy, error) {
	pol := ClusterPolicy{Budget: DefaultBudget, IdleTimeout: DefaultIdleTimeout}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		pol.LB = LBRoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		pol.LB = LBLeastRequest
		if c.GetLeastRequestLbConfig().GetChoiceCount() != nil {
			pol.LBChoices = int(c.GetLeastRequestLbConfig().GetChoiceCount().GetValue())
		}
	default:
		// RANDOM, RING_HASH, ...: translate never emits them; the closest
		// without session affinity is round robin.
		pol.LB = LBRoundRobin
	}
	for _, p := range c.GetLoadBalancingPolicy().GetPolicies() {
		tc := p.GetTypedExtensionConfig()
		if tc.GetName() == peakEwmaPolicy {
			var pe xdsv1.PeakEwmaLoadBalancer
			if err := tc.GetTypedConfig().UnmarshalTo(&pe); err != nil {
				return pol, fmt.Errorf("load_balancing_policy %s: %v", tc.GetName(), err)
			}
			pol.LB, pol.LBChoices = LBPeakEWMA, int(pe.GetChoiceCount())
			if d := pe.GetDecay(); d != nil {
				pol.LBDecay = d.AsDuration()
			}
			break
		}
		if tc.GetName() == leastRequestPolicy {
			pol.LB = LBLeastRequest
			break
		}
	}
	if od := c.GetOutlierDetection(); od != nil {
		if _, err := outlier.New(od, nil); err != nil {
			return pol, fmt.Errorf("outlier_detection: %v", err)
		}
		pol.Outlier = od
	}
	for _, t := range c.GetCircuitBreakers().GetThresholds() {
		if t.GetPriority() != 0 {
			continue
		}
		if v := t.GetMaxConnections(); v != nil && v.GetValue() != ^uint32(0) {
			pol.MaxConnections = v.GetValue()
		}
		if v := t.GetMaxRequests(); v != nil && v.GetValue() != ^uint32(0) {
			pol.MaxRequests = v.GetValue()
		}
	}
	if rb := cm.GetRetryBudget(); rb != nil {
		pol.Budget = retry.BudgetConfig{Percent: rb.GetPercent(), MinPerSecond: rb.GetMinRetriesPerSecond()}
	}
	if d := cm.GetIdleTimeout(); d != nil && d.AsDuration() > 0 {
		pol.IdleTimeout = d.AsDuration()
	}
	return pol, nil
}
