package translate

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// metadataKey is the typed_filter_metadata key of Weft's metadata.
const metadataKey = "weftmesh.io"

// outboundBuilder builds the node-independent resources: for every
// Service port a Listener, its RouteConfiguration, a Cluster and its
// ClusterLoadAssignment, and a Weft Service per Service.
type outboundBuilder struct {
	ix   *index
	opts Options

	// attached lists, per Service port, the routes whose parentRefs select
	// it, in snapshot key order.
	attached map[*portInfo][]*model.Route
	// consumer lists, per Service port and client namespace, the consumer
	// routes attached to it.
	consumer map[*portInfo]map[string][]*model.Route
	// invalid holds the empty clusters routes send to for backends that
	// do not resolve, by cluster name.
	invalid map[string]*xdsv1.ClusterMetadata
	// routeBudgets is, per cluster, the strictest retry budget of the
	// routes that retry into it (used when the cluster's own Service has
	// no retry policy).
	routeBudgets map[string]budget
	// endpointMeta caches endpoint metadata by pod and node.
	endpointMeta map[string]*corev3.Metadata

	// prev is what the previous translation built (empty for none), next
	// what this one builds, for the next one (reuse.go).
	prev, next *built
	// rec records what the RouteConfiguration being built depends on and
	// does; nil when none is.
	rec *routeBuilt

	listeners, routes, clusters, endpoints, services []types.Resource
}

// newOutboundBuilder prepares a translation that reuses from prev (nil:
// nothing) the resources whose inputs did not change.
func newOutboundBuilder(ix *index, opts Options, prev *built) *outboundBuilder {
	if prev == nil {
		prev = newBuilt()
	}
	return &outboundBuilder{
		ix:           ix,
		opts:         opts,
		invalid:      map[string]*xdsv1.ClusterMetadata{},
		routeBudgets: map[string]budget{},
		endpointMeta: map[string]*corev3.Metadata{},
		prev:         prev,
		next:         newBuilt(),
	}
}

func (b *outboundBuilder) build() {
	b.attached, b.consumer = attachRoutes(b.ix)
	// Routes first: they record the invalid backends and the budgets the
	// clusters need.
	for _, si := range b.ix.services {
		for _, pi := range si.ports {
			b.listeners = append(b.listeners, b.listenerOf(pi))
			b.routes = append(b.routes, b.routeConfigOf(pi, "", b.attached[pi]))
			for _, ns := range sortedKeys(b.consumer[pi]) {
				b.routes = append(b.routes, b.routeConfigOf(pi, ns, b.consumer[pi][ns]))
			}
		}
		b.services = append(b.services, b.serviceOf(si))
	}
	for _, si := range b.ix.services {
		for _, pi := range si.ports {
			b.clusters = append(b.clusters, b.clusterOf(pi))
			b.endpoints = append(b.endpoints, b.loadAssignmentOf(pi))
		}
	}
	for _, name := range sortedKeys(b.invalid) {
		v := b.invalidOf(name, b.invalid[name])
		b.clusters = append(b.clusters, v.cluster)
		b.endpoints = append(b.endpoints, v.cla)
	}
	sortByName(b.listeners)
	sortByName(b.routes)
	sortByName(b.clusters)
	sortByName(b.endpoints)
	for t, l := range map[string]*[]types.Resource{
		resource.ListenerType: &b.listeners, resource.RouteType: &b.routes, resource.ClusterType: &b.clusters,
		resource.EndpointType: &b.endpoints, ServiceType: &b.services,
	} {
		*l = sameList(b.prev.lists[t], *l)
		b.next.lists[t] = *l
	}
}

func (b *outboundBuilder) listenerOf(pi *portInfo) *listenerv3.Listener {
	k := keyOf(pi)
	l := b.prev.listeners[k]
	if l == nil {
		l = b.listener(pi)
	}
	b.next.listeners[k] = l
	return l
}

func (b *outboundBuilder) serviceOf(si *svcInfo) *xdsv1.Service {
	s := b.prev.services[si.svc]
	if s == nil {
		s = b.service(si)
	}
	b.next.services[si.svc] = s
	return s
}

// routeConfigOf is the RouteConfiguration of a port with the attached
// routes: the producer one (consumerNS empty, named as the listener) or
// the consumer one of namespace consumerNS.
func (b *outboundBuilder) routeConfigOf(pi *portInfo, consumerNS string, attached []*model.Route) *routev3.RouteConfiguration {
	k := keyOf(pi)
	k.consumer = consumerNS
	name := pi.listener
	if consumerNS != "" {
		name += ConsumerRouteSeparator + consumerNS
	}
	r := b.prev.routes[k]
	if r != nil && r.current(b.ix, attached, pi) {
		for _, v := range r.invalid {
			b.addInvalid(v.cluster, v.meta)
		}
		for _, rb := range r.budgets {
			b.addBudget(rb.cluster, rb.budget)
		}
	} else {
		r = &routeBuilt{attached: attached, policies: b.ix.policies[pi.svc.key], backends: map[string]*model.Service{}}
		b.rec = r
		r.rc = b.routeConfig(pi, name, attached)
		b.rec = nil
	}
	b.next.routes[k] = r
	return r.rc
}

// addInvalid records a backend that does not resolve.
func (b *outboundBuilder) addInvalid(cluster string, meta *xdsv1.ClusterMetadata) {
	b.invalid[cluster] = meta
	if b.rec != nil {
		b.rec.invalid = append(b.rec.invalid, invalidBackend{cluster, meta})
	}
}

// addBudget records that a route retries into cluster with budget bud;
// the cluster gets the strictest.
func (b *outboundBuilder) addBudget(cluster string, bud budget) {
	if cur, ok := b.routeBudgets[cluster]; !ok || bud.stricter(cur) {
		b.routeBudgets[cluster] = bud
	}
	if b.rec != nil {
		b.rec.budgets = append(b.rec.budgets, routeBudget{cluster, bud})
	}
}

// lookupService is ix.svcByKey[key], recorded as an input of the
// RouteConfiguration being built.
func (b *outboundBuilder) lookupService(key string) *svcInfo {
	si := b.ix.svcByKey[key]
	if b.rec != nil {
		var svc *model.Service
		if si != nil {
			svc = si.svc
		}
		b.rec.backends[key] = svc
	}
	return si
}

func (b *outboundBuilder) clusterOf(pi *portInfo) *clusterv3.Cluster {
	k, policies := keyOf(pi), b.ix.policies[pi.svc.key]
	bud, hasBudget := b.routeBudgets[pi.cluster]
	c := b.prev.clusters[k]
	if c == nil || !slices.Equal(c.policies, policies) || c.hasBudget != hasBudget || c.budget != bud {
		c = &clusterBuilt{c: b.cluster(pi), policies: policies, budget: bud, hasBudget: hasBudget}
	}
	b.next.clusters[k] = c
	return c.c
}

func (b *outboundBuilder) loadAssignmentOf(pi *portInfo) *endpointv3.ClusterLoadAssignment {
	k := keyOf(pi)
	c := b.prev.clas[k]
	if c == nil || !c.current(b.ix, pi.svc) {
		c = &claBuilt{cla: b.loadAssignment(pi)}
		c.slices, c.pods = claInputs(b.ix, pi.svc)
	}
	b.next.clas[k] = c
	return c.cla
}

func (b *outboundBuilder) invalidOf(name string, meta *xdsv1.ClusterMetadata) *invalidBuilt {
	v := b.prev.invalid[name]
	if v == nil || !v.current(meta) {
		v = &invalidBuilt{meta: meta, cluster: b.invalidCluster(name, meta), cla: emptyLoadAssignment(name)}
	}
	b.next.invalid[name] = v
	return v
}

// listener is the Listener of a Service port, readable by the Weft node
// proxy, by Envoy and by a proxyless gRPC client:
//   - api_listener holds the HttpConnectionManager (gRPC reads only this);
//   - a filter chain holds the same HttpConnectionManager (how Envoy and
//     go-control-plane's consistency check see RDS references);
//   - address / additional_addresses are the Service's VIPs with the port,
//     bind_to_port false: the original destination the node proxy matches.
func (b *outboundBuilder) listener(pi *portInfo) *listenerv3.Listener {
	hcm := mustAny(&hcmv3.HttpConnectionManager{
		StatPrefix: pi.listener,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: pi.listener,
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			// Empty: faults come per route (typed_per_filter_config).
			{Name: wellknown.Fault, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}},
			// The router must be last (gRPC refuses the listener otherwise).
			{Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}},
		},
	})
	l := &listenerv3.Listener{
		Name:             pi.listener,
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Name: "http",
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
			}},
		}},
		ApiListener: &listenerv3.ApiListener{ApiListener: hcm},
	}
	for i, ip := range vips(pi.svc.svc) {
		addr := socketAddress(ip, pi.port.Port)
		if i == 0 {
			l.Address = addr
			l.BindToPort = wrapperspb.Bool(false)
		} else {
			l.AdditionalAddresses = append(l.AdditionalAddresses, &listenerv3.AdditionalAddress{Address: addr})
		}
	}
	return l
}

// service is the Weft Service resource.
func (b *outboundBuilder) service(si *svcInfo) *xdsv1.Service {
	out := &xdsv1.Service{
		Name:        si.key,
		Namespace:   si.svc.Namespace,
		ServiceName: si.svc.Name,
		Hostname:    si.host,
	}
	for _, ip := range vips(si.svc) {
		out.Addresses = append(out.Addresses, ip.String())
	}
	for _, pi := range si.ports {
		out.Ports = append(out.Ports, &xdsv1.ServicePort{
			Name:        pi.port.Name,
			Port:        uint32(pi.port.Port),
			AppProtocol: pi.port.AppProtocol,
			Protocol:    pi.protocol,
			Listener:    pi.listener,
			Cluster:     pi.cluster,
		})
	}
	return out
}

// vips returns a Service's cluster IPs that parse ("None" and "" do not).
func vips(svc *model.Service) []netip.Addr {
	var out []netip.Addr
	for _, s := range svc.ClusterIPs {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

func socketAddress(ip netip.Addr, port int32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       ip.String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// hostPort joins an address and a port the way a Host header does.
func hostPort(host string, port int32) string {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(int(port))
}

// adsSource says "on the ADS stream this resource came on": the only
// source both Envoy and gRPC accept for RDS and EDS here.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// mustAny packs m deterministically. Packing a well-formed message cannot
// fail; a failure is a programming error.
func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic("translate: pack " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return a
}

// weftMetadata puts m under Weft's key of an Envoy Metadata.
func weftMetadata(m proto.Message) *corev3.Metadata {
	return &corev3.Metadata{TypedFilterMetadata: map[string]*anypb.Any{metadataKey: mustAny(m)}}
}

type named interface{ GetName() string }

type clusterNamed interface{ GetClusterName() string }

func resourceName(r types.Resource) string {
	switch v := r.(type) {
	case clusterNamed:
		return v.GetClusterName()
	case named:
		return v.GetName()
	}
	return ""
}

func sortByName(l []types.Resource) {
	sort.Slice(l, func(i, j int) bool { return resourceName(l[i]) < resourceName(l[j]) })
}
