// Package meshcfg compiles the xDS resources a node proxy holds into the
// lookups its data path needs: which Service port an intercepted original
// destination is, which endpoints a cluster has and whom to expect there,
// which local pods the node serves, and the trust bundle.
//
// It is pure: [Build] takes the resources by type URL and name and returns
// an immutable [Config] or the reasons it cannot. The proxy swaps whole
// Configs atomically, so a connection sees one consistent generation.
//
// What a reference to something absent means: a Service port whose cluster
// has no ClusterLoadAssignment has no endpoints (the types arrive on the
// ADS stream one after the other); a connection to it is refused. Nothing
// absent is an error: an error is a resource that cannot be read.
package meshcfg

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// Type URLs of the resources a node proxy subscribes to.
const (
	ListenerType     = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType        = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType      = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType     = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	WorkloadType     = "type.googleapis.com/weft.xds.v1.Workload"
	ServiceType      = "type.googleapis.com/weft.xds.v1.Service"
	TrustBundleType  = "type.googleapis.com/weft.xds.v1.TrustBundle"
	metadataKey      = "weftmesh.io"
	endpointMetaType = "type.googleapis.com/weft.xds.v1.EndpointMetadata"
	clusterMetaType  = "type.googleapis.com/weft.xds.v1.ClusterMetadata"
)

// Types lists every type URL a node proxy subscribes to.
var Types = []string{ListenerType, RouteType, ClusterType, EndpointType, WorkloadType, ServiceType, TrustBundleType}

// Resources are xDS resources by type URL, then by name.
type Resources map[string]map[string]*anypb.Any

// Config is one compiled generation of the node's configuration. It is
// immutable; every method is safe for concurrent use.
type Config struct {
	// Version counts generations, from 1.
	Version uint64

	trustDomain spiffeid.TrustDomain
	bundle      *x509bundle.Bundle

	services  map[netip.AddrPort]*ServicePort // by cluster IP and port
	clusters  map[string]*Cluster
	endpoints map[netip.Addr]*Endpoint // meshed pods, by pod IP
	workloads map[string]*Workload     // by "namespace/pod"
	local     map[netip.Addr]*Workload // by pod IP

	raw Resources
}

// ServicePort is a TCP port of a Service.
type ServicePort struct {
	Service  string // "namespace/name"
	Hostname string
	Port     uint32
	Protocol xdsv1.Protocol
	Listener string
	Cluster  string
	// Routes is the port's compiled RouteConfiguration (named Listener);
	// nil until it arrives.
	Routes *Routes
	// Consumer holds the consumer routes by client namespace: routes in
	// another namespace than the Service, which replace Routes for
	// clients in their namespace.
	Consumer map[string]*Routes
}

// Cluster is an upstream: a Service port's endpoints.
type Cluster struct {
	Name      string
	Service   string // "namespace/name", from the cluster metadata
	Endpoints []*Endpoint
	// Invalid says why a route's backend does not exist; empty when valid.
	Invalid string
	// Policy holds the load-balancing, outlier-detection, retry-budget
	// and limit settings.
	Policy ClusterPolicy

	next atomic.Uint64 // round-robin position
}

// Endpoint is one address of a cluster.
type Endpoint struct {
	Addr netip.AddrPort
	Pod  string // "namespace/pod", or ""
	Node string
	// Workload is the controller that owns the pod (e.g. the Deployment),
	// for metrics' destination_workload; "" when not a pod.
	Workload string
	Identity spiffeid.ID // zero when not meshed
	// Tunnel is true when the endpoint is reached through HBONE at
	// <pod IP>:15008, false for plain TCP.
	Tunnel bool
}

// Workload is an enrolled pod on this node.
type Workload struct {
	*xdsv1.Workload
	Addrs    []netip.Addr
	Identity spiffeid.ID
}

// TrustDomain returns the mesh's trust domain (zero before a bundle came).
func (c *Config) TrustDomain() spiffeid.TrustDomain { return c.trustDomain }

// Bundle returns the trust bundle, nil before one came.
func (c *Config) Bundle() *x509bundle.Bundle { return c.bundle }

// Service returns the Service port whose cluster IP and port are dst.
func (c *Config) Service(dst netip.AddrPort) (*ServicePort, bool) {
	sp, ok := c.services[unmap(dst)]
	return sp, ok
}

// Cluster returns the cluster called name.
func (c *Config) Cluster(name string) (*Cluster, bool) {
	cl, ok := c.clusters[name]
	return cl, ok
}

// MeshedPod returns the endpoint of the meshed pod with address a, from any
// cluster's endpoints.
func (c *Config) MeshedPod(a netip.Addr) (*Endpoint, bool) {
	ep, ok := c.endpoints[a.Unmap()]
	return ep, ok
}

// Workload returns the local workload "namespace/pod".
func (c *Config) Workload(key string) (*Workload, bool) {
	w, ok := c.workloads[key]
	return w, ok
}

// LocalAddr returns the local workload with address a.
func (c *Config) LocalAddr(a netip.Addr) (*Workload, bool) {
	w, ok := c.local[a.Unmap()]
	return w, ok
}

// Workloads returns the local workloads sorted by name.
func (c *Config) Workloads() []*Workload {
	out := make([]*Workload, 0, len(c.workloads))
	for _, w := range c.workloads {
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Resources returns the resources the Config was built from. The caller
// must not modify them.
func (c *Config) Resources() Resources { return c.raw }

// Pick returns the next endpoint in round-robin order, or false when the
// cluster has none.
func (cl *Cluster) Pick() (*Endpoint, bool) {
	n := uint64(len(cl.Endpoints))
	if n == 0 {
		return nil, false
	}
	return cl.Endpoints[(cl.next.Add(1)-1)%n], true
}

// HasAddr reports whether the workload has address a.
func (w *Workload) HasAddr(a netip.Addr) bool {
	a = a.Unmap()
	for _, x := range w.Addrs {
		if x == a {
			return true
		}
	}
	return false
}

// Build compiles res into generation version. Every resource that cannot be
// read is reported; the result is then nil.
func Build(res Resources, version uint64) (*Config, error) {
	b := builder{c: &Config{
		Version:   version,
		services:  map[netip.AddrPort]*ServicePort{},
		clusters:  map[string]*Cluster{},
		endpoints: map[netip.Addr]*Endpoint{},
		workloads: map[string]*Workload{},
		local:     map[netip.Addr]*Workload{},
		raw:       res,
	}}
	b.routes, b.consumer = map[string]*Routes{}, map[string]map[string]*Routes{}
	for _, name := range sortedNames(res[RouteType]) {
		b.routeConfig(name, res[RouteType][name])
	}
	for _, name := range sortedNames(res[TrustBundleType]) {
		b.trustBundle(name, res[TrustBundleType][name])
	}
	for _, name := range sortedNames(res[ServiceType]) {
		b.service(name, res[ServiceType][name])
	}
	for _, name := range sortedNames(res[ClusterType]) {
		b.cluster(name, res[ClusterType][name])
	}
	for _, name := range sortedNames(res[EndpointType]) {
		b.assignment(name, res[EndpointType][name])
	}
	for _, name := range sortedNames(res[WorkloadType]) {
		b.workload(name, res[WorkloadType][name])
	}
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	return b.c, nil
}

type builder struct {
	c        *Config
	errs     []error
	routes   map[string]*Routes            // by RouteConfiguration name
	consumer map[string]map[string]*Routes // by listener, then namespace
}

func (b *builder) fail(kind, name, format string, args ...any) {
	b.errs = append(b.errs, fmt.Errorf("%s %q: %s", kind, name, fmt.Sprintf(format, args...)))
}

func (b *builder) unmarshal(kind, name string, a *anypb.Any, m proto.Message) bool {
	if a == nil {
		b.fail(kind, name, "empty resource")
		return false
	}
	if err := a.UnmarshalTo(m); err != nil {
		b.fail(kind, name, "%v", err)
		return false
	}
	return true
}

func (b *builder) trustBundle(name string, a *anypb.Any) {
	var tb xdsv1.TrustBundle
	if !b.unmarshal("trust bundle", name, a, &tb) {
		return
	}
	td, err := spiffeid.TrustDomainFromString(tb.GetTrustDomain())
	if err != nil {
		b.fail("trust bundle", name, "trust domain: %v", err)
		return
	}
	if len(tb.GetRoots()) == 0 {
		b.fail("trust bundle", name, "no roots")
		return
	}
	var der []byte
	for _, r := range tb.GetRoots() {
		der = append(der, r...)
	}
	bundle, err := x509bundle.ParseRaw(td, der)
	if err != nil {
		b.fail("trust bundle", name, "%v", err)
		return
	}
	if bundle.Empty() {
		b.fail("trust bundle", name, "no roots")
		return
	}
	if b.c.bundle != nil {
		b.fail("trust bundle", name, "a second trust bundle (%s already received)", b.c.trustDomain)
		return
	}
	b.c.trustDomain, b.c.bundle = td, bundle
}

func (b *builder) service(name string, a *anypb.Any) {
	var s xdsv1.Service
	if !b.unmarshal("service", name, a, &s) {
		return
	}
	var addrs []netip.Addr
	for _, raw := range s.GetAddresses() {
		ip, err := netip.ParseAddr(raw)
		if err != nil {
			b.fail("service", name, "address %q: not an IP address", raw)
			return
		}
		addrs = append(addrs, ip.Unmap())
	}
	for _, p := range s.GetPorts() {
		if p.GetPort() == 0 || p.GetPort() > 65535 {
			b.fail("service", name, "port %d: out of range", p.GetPort())
			return
		}
		sp := &ServicePort{
			Service:  s.GetName(),
			Hostname: s.GetHostname(),
			Port:     p.GetPort(),
			Protocol: p.GetProtocol(),
			Listener: p.GetListener(),
			Cluster:  p.GetCluster(),
			Routes:   b.routes[p.GetListener()],
			Consumer: b.consumer[p.GetListener()],
		}
		for _, ip := range addrs {
			b.c.services[netip.AddrPortFrom(ip, uint16(p.GetPort()))] = sp
		}
	}
}

func (b *builder) cluster(name string, a *anypb.Any) {
	var c clusterv3.Cluster
	if !b.unmarshal("cluster", name, a, &c) {
		return
	}
	cl := &Cluster{Name: c.GetName()}
	var cm xdsv1.ClusterMetadata
	if m, ok := c.GetMetadata().GetTypedFilterMetadata()[metadataKey]; ok {
		if !b.unmarshal("cluster", name, m, &cm) {
			return
		}
		cl.Service, cl.Invalid = cm.GetService(), cm.GetInvalidBackend()
	}
	pol, err := clusterPolicy(&c, &cm)
	if err != nil {
		b.fail("cluster", name, "%v", err)
		return
	}
	cl.Policy = pol
	b.c.clusters[cl.Name] = cl
}

func (b *builder) assignment(name string, a *anypb.Any) {
	var cla endpointv3.ClusterLoadAssignment
	if !b.unmarshal("load assignment", name, a, &cla) {
		return
	}
	cl, ok := b.c.clusters[cla.GetClusterName()]
	if !ok {
		// The Cluster has not arrived yet (or is gone): nothing refers to
		// these endpoints. Keep them for the pod-IP lookups.
		cl = &Cluster{Name: cla.GetClusterName(), Policy: ClusterPolicy{Budget: DefaultBudget, IdleTimeout: DefaultIdleTimeout}}
		b.c.clusters[cl.Name] = cl
	}
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			ep, err := endpoint(lb)
			if err != nil {
				b.fail("load assignment", name, "%v", err)
				return
			}
			cl.Endpoints = append(cl.Endpoints, ep)
			if ep.Tunnel {
				b.c.endpoints[ep.Addr.Addr()] = ep
			}
		}
	}
}

func endpoint(lb *endpointv3.LbEndpoint) (*Endpoint, error) {
	sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("endpoint address %q: not an IP address", sa.GetAddress())
	}
	port := sa.GetPortValue()
	if port == 0 || port > 65535 {
		return nil, fmt.Errorf("endpoint %s: port %d out of range", ip, port)
	}
	ep := &Endpoint{Addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}
	m, ok := lb.GetMetadata().GetTypedFilterMetadata()[metadataKey]
	if !ok {
		return ep, nil
	}
	var em xdsv1.EndpointMetadata
	if err := m.UnmarshalTo(&em); err != nil {
		return nil, fmt.Errorf("endpoint %s metadata: %w", ep.Addr, err)
	}
	ep.Pod, ep.Node, ep.Workload = em.GetPod(), em.GetNode(), em.GetWorkload()
	if em.GetIdentity() != "" {
		id, err := spiffeid.FromString(em.GetIdentity())
		if err != nil {
			return nil, fmt.Errorf("endpoint %s identity %q: %w", ep.Addr, em.GetIdentity(), err)
		}
		ep.Identity = id
	}
	switch em.GetTunnel() {
	case xdsv1.Tunnel_TUNNEL_HBONE:
		if ep.Identity.IsZero() {
			return nil, fmt.Errorf("endpoint %s: HBONE without an identity", ep.Addr)
		}
		ep.Tunnel = true
	case xdsv1.Tunnel_TUNNEL_NONE:
	default:
		return nil, fmt.Errorf("endpoint %s: unknown tunnel %v", ep.Addr, em.GetTunnel())
	}
	return ep, nil
}

func (b *builder) workload(name string, a *anypb.Any) {
	var w xdsv1.Workload
	if !b.unmarshal("workload", name, a, &w) {
		return
	}
	if w.GetName() != w.GetNamespace()+"/"+w.GetPodName() {
		b.fail("workload", name, "name %q is not namespace/pod", w.GetName())
		return
	}
	id, err := spiffeid.FromString(w.GetIdentity())
	if err != nil {
		b.fail("workload", name, "identity %q: %v", w.GetIdentity(), err)
		return
	}
	wl := &Workload{Workload: &w, Identity: id}
	for _, raw := range w.GetAddresses() {
		ip, err := netip.ParseAddr(raw)
		if err != nil {
			b.fail("workload", name, "address %q: not an IP address", raw)
			return
		}
		wl.Addrs = append(wl.Addrs, ip.Unmap())
	}
	for _, az := range w.GetAuthorization() {
		if az.GetAction() != xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_ALLOW && az.GetAction() != xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_DENY {
			// Evaluation fails closed on it; still worth saying.
			b.errs = append(b.errs, fmt.Errorf("workload %q: policy %s: unknown action %v", name, az.GetPolicy(), az.GetAction()))
			return
		}
	}
	b.c.workloads[w.GetName()] = wl
	for _, ip := range wl.Addrs {
		b.c.local[ip] = wl
	}
}

func sortedNames(m map[string]*anypb.Any) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// namespaceOf returns the namespace in a SPIFFE ID of the form
// /ns/<namespace>/..., or "".
func namespaceOf(id spiffeid.ID) string {
	rest, ok := strings.CutPrefix(id.Path(), "/ns/")
	if !ok {
		return ""
	}
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

// HTTPPort reports whether the workload's Services declare port as
// HTTP/1.1.
func (w *Workload) HTTPPort(port uint16) bool {
	return w.PortProtocol(port) == xdsv1.Protocol_PROTOCOL_HTTP
}

// PortProtocol is the protocol the workload's Services declare for port
// (PROTOCOL_UNSPECIFIED when none does).
func (w *Workload) PortProtocol(port uint16) xdsv1.Protocol {
	for _, p := range w.GetPorts() {
		if p.GetPort() == uint32(port) {
			return p.GetProtocol()
		}
	}
	return xdsv1.Protocol_PROTOCOL_UNSPECIFIED
}
