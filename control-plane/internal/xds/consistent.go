package xds

import (
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// InconsistentError lists the references a snapshot cannot resolve.
type InconsistentError struct {
	Problems []string // sorted, one per broken reference
}

func (e *InconsistentError) Error() string {
	return "inconsistent snapshot: " + strings.Join(e.Problems, "; ")
}

// Consistent reports whether every reference between the snapshot's
// Envoy resources resolves inside the snapshot:
//
//   - every route configuration a listener names through RDS (in a filter
//     chain, the default filter chain or an API listener) exists;
//   - every EDS cluster has a ClusterLoadAssignment (named by its
//     eds_cluster_config.service_name, or else by the cluster's name);
//   - every cluster a route (in a RouteConfiguration or inline in a
//     listener) or a TCP proxy filter sends traffic to exists.
//
// Resources nobody references are allowed. Weft's own types carry no
// references that are checked here.
func (s *Snapshot) Consistent() error { return s.consistent(nil) }

// consistent is Consistent, taking the references of listeners from refs
// when it has them (nil: none).
func (s *Snapshot) consistent(refs *setCache) error {
	c := checker{s: s}
	for _, name := range c.sortedNames(resourcev3.ListenerType) {
		if l, ok := getAs[*listenerv3.Listener](&c, resourcev3.ListenerType, name); ok {
			lr := refs.listenerRefs(l)
			c.problems = append(c.problems, lr.problems...)
			for _, r := range lr.refs {
				c.check(r)
			}
		}
	}
	for _, name := range c.sortedNames(resourcev3.RouteType) {
		if rc, ok := getAs[*routev3.RouteConfiguration](&c, resourcev3.RouteType, name); ok {
			for _, r := range routeRefs("route configuration "+quote(name), rc, nil) {
				c.check(r)
			}
		}
	}
	for _, name := range c.sortedNames(resourcev3.ClusterType) {
		cl, ok := getAs[*clusterv3.Cluster](&c, resourcev3.ClusterType, name)
		if !ok || cl.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		want := cl.GetEdsClusterConfig().GetServiceName()
		if want == "" {
			want = cl.GetName()
		}
		if !c.has(resourcev3.EndpointType, want) {
			c.problem("EDS cluster %s has no ClusterLoadAssignment %s", quote(cl.GetName()), quote(want))
		}
	}
	if len(c.problems) == 0 {
		return nil
	}
	slices.Sort(c.problems)
	return &InconsistentError{Problems: slices.Compact(c.problems)}
}

type checker struct {
	s        *Snapshot
	problems []string
}

func (c *checker) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) sortedNames(typeURL string) []string {
	set, ok := c.s.sets[typeURL]
	if !ok {
		return nil
	}
	names := make([]string, 0, len(set.items))
	for name := range set.items {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// getAs returns a resource as the generated Go type of its type URL. A
// message of the right name but another Go type (a dynamic message) cannot
// be inspected and is reported.
func getAs[T any](c *checker, typeURL, name string) (T, bool) {
	r, ok := c.s.sets[typeURL].items[name].Resource.(T)
	if !ok {
		c.problem("%s %s is not the generated Go type", typeURL, quote(name))
	}
	return r, ok
}

func (c *checker) has(typeURL, name string) bool {
	set, ok := c.s.sets[typeURL]
	if !ok {
		return false
	}
	_, ok = set.items[name]
	return ok
}

// check reports r if it does not resolve.
func (c *checker) check(r reference) {
	if c.has(r.typeURL, r.name) {
		return
	}
	what := "cluster"
	if r.typeURL == resourcev3.RouteType {
		what = "route configuration"
	}
	c.problem("%s: %s %s does not exist", r.where, what, quote(r.name))
}

// reference is a resource that another one names.
type reference struct {
	where, typeURL, name string
}

// listenerRefs is what a listener references, and why it could not be
// read (when it could not).
type listenerRefs struct {
	refs     []reference
	problems []string
}

// readListener finds what a listener references. Its HTTP connection
// managers and TCP proxies are in Anys, which is what makes this costly.
func readListener(l *listenerv3.Listener) listenerRefs {
	var out listenerRefs
	where := "listener " + quote(l.GetName())
	chains := slices.Clone(l.GetFilterChains())
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(chains, d)
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			out.networkFilter(where+" filter "+quote(f.GetName()), f.GetTypedConfig())
		}
	}
	if api := l.GetApiListener().GetApiListener(); api != nil {
		out.networkFilter(where+" api_listener", api)
	}
	return out
}

// networkFilter reads the references of an HTTP connection manager or a
// TCP proxy; other filters reference nothing this checker knows about.
func (out *listenerRefs) networkFilter(where string, cfg *anypb.Any) {
	switch {
	case cfg.MessageIs((*hcmv3.HttpConnectionManager)(nil)):
		hcm := new(hcmv3.HttpConnectionManager)
		if err := cfg.UnmarshalTo(hcm); err != nil {
			out.problems = append(out.problems, fmt.Sprintf("%s: %v", where, err))
			return
		}
		if rds := hcm.GetRds(); rds != nil {
			out.refs = append(out.refs, reference{where, resourcev3.RouteType, rds.GetRouteConfigName()})
		}
		if rc := hcm.GetRouteConfig(); rc != nil {
			out.refs = routeRefs(where+" inline routes", rc, out.refs)
		}
	case cfg.MessageIs((*tcpproxyv3.TcpProxy)(nil)):
		tp := new(tcpproxyv3.TcpProxy)
		if err := cfg.UnmarshalTo(tp); err != nil {
			out.problems = append(out.problems, fmt.Sprintf("%s: %v", where, err))
			return
		}
		if name := tp.GetCluster(); name != "" {
			out.refs = append(out.refs, reference{where, resourcev3.ClusterType, name})
		}
		for _, w := range tp.GetWeightedClusters().GetClusters() {
			out.refs = append(out.refs, reference{where, resourcev3.ClusterType, w.GetName()})
		}
	}
}

// routeRefs appends to refs the clusters the routes of rc send traffic to.
func routeRefs(where string, rc *routev3.RouteConfiguration, refs []reference) []reference {
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			action := r.GetRoute()
			if name := action.GetCluster(); name != "" {
				refs = append(refs, reference{where, resourcev3.ClusterType, name})
			}
			for _, w := range action.GetWeightedClusters().GetClusters() {
				refs = append(refs, reference{where, resourcev3.ClusterType, w.GetName()})
			}
		}
	}
	return refs
}

func quote(s string) string { return fmt.Sprintf("%q", s) }
