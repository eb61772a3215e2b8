package translate

import (
	"sort"
	"strconv"
	"strings"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// index is the snapshot reorganised for lookups, built once per Mesh.
type index struct {
	snap *model.Snapshot
	opts Options

	services []*svcInfo // sorted by key; ExternalName Services left out
	svcByKey map[string]*svcInfo
	svcsByNS map[string][]*svcInfo

	// slicesBySvc holds each Service's EndpointSlices, sorted by key.
	slicesBySvc map[string][]*model.EndpointSlice
	// podSvcs records, per pod key, the Services whose slices list it.
	podSvcs map[string][]string
	// backendOf lists, per pod key, the Services the pod is a backend of
	// (selector or slices), sorted by key; built once so that a node's
	// workloads cost no scan over every Service.
	backendOf map[string][]*svcInfo
	// policies holds the TrafficPolicy targets per Service key, in
	// precedence order (see effectivePolicy).
	policies map[string][]policyTarget
	// authz holds the AuthorizationPolicies per namespace, sorted by name.
	authz map[string][]*model.AuthorizationPolicy
}

// svcInfo is a Service and its names.
type svcInfo struct {
	svc   *model.Service
	key   string // namespace/name
	host  string // name.namespace.svc.<domain>
	ports []*portInfo
}

// portInfo is one TCP port of a Service and the names derived from it.
type portInfo struct {
	svc      *svcInfo
	port     model.ServicePort
	protocol xdsv1.Protocol
	listener string // also the RouteConfiguration name
	cluster  string
}

// policyTarget is one targetRef of a TrafficPolicy that names a Service.
type policyTarget struct {
	tp      *model.TrafficPolicy
	section string
}

// newIndex indexes s. Parts whose inputs are the same objects as those of
// prev (nil: none), as same says, are taken from prev: an index is never
// modified once built.
func newIndex(s *model.Snapshot, opts Options, prev *index, same sameInputs) *index {
	ix := &index{snap: s, opts: opts}
	if same.services {
		ix.services, ix.svcByKey, ix.svcsByNS = prev.services, prev.svcByKey, prev.svcsByNS
	} else {
		ix.indexServices()
	}
	if same.slices {
		ix.slicesBySvc, ix.podSvcs = prev.slicesBySvc, prev.podSvcs
	} else {
		ix.indexSlices()
	}
	if same.policies {
		ix.policies = prev.policies
	} else {
		ix.indexPolicies()
	}
	if same.authz {
		ix.authz = prev.authz
	} else {
		ix.authz = map[string][]*model.AuthorizationPolicy{}
		for _, key := range sortedKeys(s.AuthorizationPolicies) {
			ap := s.AuthorizationPolicies[key]
			ix.authz[ap.Namespace] = append(ix.authz[ap.Namespace], ap)
		}
	}
	if same.services && same.slices && same.pods {
		ix.backendOf = prev.backendOf
	} else {
		ix.indexBackends()
	}
	return ix
}

func (ix *index) indexServices() {
	ix.svcByKey, ix.svcsByNS = map[string]*svcInfo{}, map[string][]*svcInfo{}
	for _, key := range sortedKeys(ix.snap.Services) {
		svc := ix.snap.Services[key]
		if svc.Type == "ExternalName" {
			continue
		}
		si := &svcInfo{svc: svc, key: svc.Key(), host: hostname(svc.Name, svc.Namespace, ix.opts.ClusterDomain)}
		for _, sp := range svc.Ports {
			if sp.Protocol != "" && sp.Protocol != "TCP" {
				continue
			}
			si.ports = append(si.ports, &portInfo{
				svc:      si,
				port:     sp,
				protocol: protocolOf(sp),
				listener: listenerName(si.host, sp.Port),
				cluster:  clusterName(si.host, sp.Port),
			})
		}
		ix.services = append(ix.services, si)
		ix.svcByKey[si.key] = si
		ix.svcsByNS[svc.Namespace] = append(ix.svcsByNS[svc.Namespace], si)
	}
}

func (ix *index) indexSlices() {
	ix.slicesBySvc, ix.podSvcs = map[string][]*model.EndpointSlice{}, map[string][]string{}
	for _, key := range sortedKeys(ix.snap.EndpointSlices) {
		es := ix.snap.EndpointSlices[key]
		svcKey := es.Namespace + "/" + es.Service
		ix.slicesBySvc[svcKey] = append(ix.slicesBySvc[svcKey], es)
		for _, ep := range es.Endpoints {
			if ep.Pod == "" {
				continue
			}
			if l := ix.podSvcs[ep.Pod]; !contains(l, svcKey) {
				ix.podSvcs[ep.Pod] = append(l, svcKey)
			}
		}
	}
}

func (ix *index) indexPolicies() {
	ix.policies = map[string][]policyTarget{}
	tps := make([]*model.TrafficPolicy, 0, len(ix.snap.TrafficPolicies))
	for _, tp := range ix.snap.TrafficPolicies {
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool { return olderFirst(&tps[i].ObjectMeta, &tps[j].ObjectMeta) })
	for _, tp := range tps {
		for _, t := range tp.Targets {
			if !isServiceRef(t.Group, t.Kind) {
				continue
			}
			k := tp.Namespace + "/" + t.Name
			ix.policies[k] = append(ix.policies[k], policyTarget{tp: tp, section: t.SectionName})
		}
	}
}

// olderFirst is Gateway API's tie-break: the oldest object wins, then the
// first by "namespace/name".
func olderFirst(a, b *model.ObjectMeta) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// isServiceRef reports whether a reference's group and kind name a core
// Service ("" kind defaults to Service).
func isServiceRef(group, kind string) bool {
	return (kind == "" || kind == "Service") && (group == "" || group == "core")
}

// selects reports whether svc's selector picks pod.
func selects(svc *model.Service, pod *model.Pod) bool {
	if len(svc.Selector) == 0 || svc.Namespace != pod.Namespace {
		return false
	}
	for k, v := range svc.Selector {
		if l, ok := pod.Labels[k]; !ok || l != v {
			return false
		}
	}
	return true
}

// servicesOf returns the Services pod is a backend of, sorted by key: the
// ones whose selector matches it and the ones whose slices list it.
func (ix *index) servicesOf(pod *model.Pod) []*svcInfo {
	return ix.backendOf[pod.Key()]
}

// indexBackends fills backendOf. Pods are indexed by namespace and label
// pair, and each Service's selector is evaluated only on the pods that carry
// its rarest pair: O(pods + matches) instead of O(pods x Services).
func (ix *index) indexBackends() {
	byLabel := map[string]map[string][]*model.Pod{} // namespace -> "k=v" -> pods
	for _, key := range sortedKeys(ix.snap.Pods) {
		p := ix.snap.Pods[key]
		m := byLabel[p.Namespace]
		if m == nil {
			m = map[string][]*model.Pod{}
			byLabel[p.Namespace] = m
		}
		for k, v := range p.Labels {
			m[k+"="+v] = append(m[k+"="+v], p)
		}
	}
	member := map[string]map[string]bool{} // pod key -> service keys
	add := func(pod, svc string) {
		if member[pod] == nil {
			member[pod] = map[string]bool{}
		}
		member[pod][svc] = true
	}
	for _, si := range ix.services {
		if len(si.svc.Selector) == 0 {
			continue
		}
		var candidates []*model.Pod
		first := true
		for k, v := range si.svc.Selector {
			l := byLabel[si.svc.Namespace][k+"="+v]
			if first || len(l) < len(candidates) {
				candidates, first = l, false
			}
		}
		for _, p := range candidates {
			if selects(si.svc, p) {
				add(p.Key(), si.key)
			}
		}
	}
	for pod, svcs := range ix.podSvcs {
		for _, s := range svcs {
			add(pod, s)
		}
	}
	ix.backendOf = make(map[string][]*svcInfo, len(member))
	for pod, svcs := range member {
		ns, _, _ := strings.Cut(pod, "/")
		for _, si := range ix.svcsByNS[ns] { // sorted by key
			if svcs[si.key] {
				ix.backendOf[pod] = append(ix.backendOf[pod], si)
			}
		}
	}
}

// targetPort resolves the pod port a Service port sends to: the number
// written in the Service, or, for a named targetPort, the number the
// Service's EndpointSlices give the port. 0 when unknown.
func (ix *index) targetPort(pi *portInfo) int32 {
	if pi.port.TargetPort != 0 {
		return pi.port.TargetPort
	}
	for _, es := range ix.slicesBySvc[pi.svc.key] {
		for _, p := range es.Ports {
			if p.Name == pi.port.Name && p.Port != 0 {
				return p.Port
			}
		}
	}
	if pi.port.TargetPortName == "" {
		return pi.port.Port // Kubernetes defaults targetPort to port
	}
	return 0
}

// protocolOf decides a Service port's protocol: appProtocol first, then
// the port name's prefix (the part before the first "-").
func protocolOf(sp model.ServicePort) xdsv1.Protocol {
	if p := protocolByName(strings.ToLower(sp.AppProtocol)); p != xdsv1.Protocol_PROTOCOL_UNSPECIFIED {
		return p
	}
	name, _, _ := strings.Cut(strings.ToLower(sp.Name), "-")
	return protocolByName(name)
}

func protocolByName(s string) xdsv1.Protocol {
	switch s {
	case "http":
		return xdsv1.Protocol_PROTOCOL_HTTP
	case "http2", "h2c", "kubernetes.io/h2c":
		return xdsv1.Protocol_PROTOCOL_HTTP2
	case "grpc":
		return xdsv1.Protocol_PROTOCOL_GRPC
	case "tcp":
		return xdsv1.Protocol_PROTOCOL_TCP
	}
	return xdsv1.Protocol_PROTOCOL_UNSPECIFIED
}

// Names. docs/concepts/xds.md documents them.

func hostname(name, namespace, domain string) string {
	return name + "." + namespace + ".svc." + domain
}

func listenerName(host string, port int32) string {
	return host + ":" + strconv.Itoa(int(port))
}

func clusterName(host string, port int32) string {
	return "outbound|" + strconv.Itoa(int(port)) + "||" + host
}

// invalidClusterName names the empty cluster a backendRef that cannot be
// resolved sends to. Its own prefix keeps it apart from a real Service's
// cluster (a backend in another namespace may well exist).
func invalidClusterName(b model.Backend, namespace string, port int32, domain string) string {
	if isServiceRef(b.Group, b.Kind) {
		return "invalid|" + strconv.Itoa(int(port)) + "||" + hostname(b.Name, namespace, domain)
	}
	group := b.Group
	if group == "" {
		group = "core"
	}
	return "invalid|" + strconv.Itoa(int(port)) + "|" + b.Kind + "." + group + "|" + b.Name + "." + namespace
}

func spiffeID(trustDomain, namespace, serviceAccount string) string {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}
