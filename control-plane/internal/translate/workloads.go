package translate

import (
	"sort"
	"strings"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// InboundKey is the annotation, on a pod or its namespace, that sets the
// inbound mode: InboundPermissive or InboundStrict. The pod's wins; an
// absent or unknown value means STRICT.
const (
	InboundKey        = "weftmesh.io/inbound"
	InboundPermissive = "permissive"
	InboundStrict     = "strict"
)

// workload is the Workload of an enrolled pod, nil for a pod outside the
// mesh.
func workload(ix *index, pod *model.Pod, opts Options) *xdsv1.Workload {
	ns := ix.snap.Namespaces[pod.Namespace]
	if model.EnrollmentOf(ns, pod) != model.Enrolled {
		return nil
	}
	sa := pod.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	w := &xdsv1.Workload{
		Name:           pod.Key(),
		Uid:            pod.UID,
		Namespace:      pod.Namespace,
		PodName:        pod.Name,
		Node:           pod.NodeName,
		Identity:       spiffeID(opts.TrustDomain, pod.Namespace, sa),
		ServiceAccount: sa,
		InboundMode:    inboundMode(ns, pod),
		Workload:       pod.Workload,
	}
	if pod.IP != "" {
		w.Addresses = []string{pod.IP}
	}
	svcs := ix.servicesOf(pod)
	ports := map[uint32]xdsv1.Protocol{}
	for _, si := range svcs {
		w.Services = append(w.Services, si.key)
		for _, pi := range si.ports {
			tp := ix.targetPort(pi)
			if tp <= 0 {
				continue
			}
			if cur, ok := ports[uint32(tp)]; !ok || cur == xdsv1.Protocol_PROTOCOL_UNSPECIFIED {
				ports[uint32(tp)] = pi.protocol
			}
		}
	}
	for p, proto := range ports {
		w.Ports = append(w.Ports, &xdsv1.WorkloadPort{Port: p, Protocol: proto})
	}
	sort.Slice(w.Ports, func(i, j int) bool { return w.Ports[i].Port < w.Ports[j].Port })
	w.Authorization = authorizations(ix, pod, svcs)
	return w
}

func inboundMode(ns *model.Namespace, pod *model.Pod) xdsv1.InboundMode {
	v, ok := pod.Annotations[InboundKey]
	if !ok && ns != nil {
		v = ns.Annotations[InboundKey]
	}
	if strings.EqualFold(strings.TrimSpace(v), InboundPermissive) {
		return xdsv1.InboundMode_INBOUND_MODE_PERMISSIVE
	}
	return xdsv1.InboundMode_INBOUND_MODE_STRICT
}

// authorizations compiles the AuthorizationPolicies that apply to pod: the
// ones of its namespace with no targetRefs, and the ones with a targetRef
// to a Service the pod belongs to. A targetRef with a sectionName limits
// the policy to that port's pod port; when any selecting targetRef has
// none, or a named port cannot be resolved, the policy covers every port
// (failing closed for both actions: a Deny denies more, an Allow admits
// less).
func authorizations(ix *index, pod *model.Pod, svcs []*svcInfo) []*xdsv1.Authorization {
	member := make(map[string]*svcInfo, len(svcs))
	for _, si := range svcs {
		member[si.svc.Name] = si
	}
	var out []*xdsv1.Authorization
	for _, ap := range ix.authz[pod.Namespace] {
		applies, allPorts := len(ap.Targets) == 0, len(ap.Targets) == 0
		var ports []uint32
		for _, t := range ap.Targets {
			si, ok := member[t.Name]
			if !ok || !isServiceRef(t.Group, t.Kind) {
				continue
			}
			applies = true
			if t.SectionName == "" {
				allPorts = true
				continue
			}
			tp := int32(0)
			for _, pi := range si.ports {
				if pi.port.Name == t.SectionName {
					tp = ix.targetPort(pi)
				}
			}
			if tp <= 0 {
				allPorts = true
				continue
			}
			ports = append(ports, uint32(tp))
		}
		if !applies {
			continue
		}
		a := &xdsv1.Authorization{Policy: ap.Key(), Action: authzAction(ap.Action), Rules: compileRules(ap.Rules)}
		if !allPorts {
			a.Ports = sortedUnique(ports)
		}
		out = append(out, a)
	}
	return out
}

func authzAction(a model.AuthorizationAction) xdsv1.AuthorizationAction {
	switch a {
	case model.AuthzAllow:
		return xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_ALLOW
	case model.AuthzDeny:
		return xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_DENY
	}
	return xdsv1.AuthorizationAction_AUTHORIZATION_ACTION_UNSPECIFIED
}

func compileRules(rules []model.AuthorizationRule) []*xdsv1.AuthorizationRule {
	out := make([]*xdsv1.AuthorizationRule, 0, len(rules))
	for _, r := range rules {
		cr := &xdsv1.AuthorizationRule{}
		for _, f := range r.From {
			src := &xdsv1.AuthorizationSource{Namespaces: f.Namespaces}
			for _, id := range f.Identities {
				src.Identities = append(src.Identities, starMatch(id))
			}
			cr.From = append(cr.From, src)
		}
		for _, t := range r.To {
			op := &xdsv1.AuthorizationOperation{Methods: t.Methods}
			for _, p := range t.Ports {
				op.Ports = append(op.Ports, uint32(p))
			}
			for _, p := range t.Paths {
				op.Paths = append(op.Paths, starMatch(p))
			}
			cr.To = append(cr.To, op)
		}
		out = append(out, cr)
	}
	return out
}

// starMatch reads the CRD's "trailing * is a prefix" convention.
func starMatch(s string) *xdsv1.StringMatch {
	if v, ok := strings.CutSuffix(s, "*"); ok {
		return &xdsv1.StringMatch{Value: v, Prefix: true}
	}
	return &xdsv1.StringMatch{Value: s}
}

func sortedUnique(l []uint32) []uint32 {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	out := l[:0]
	for i, v := range l {
		if i == 0 || v != l[i-1] {
			out = append(out, v)
		}
	}
	return out
}
