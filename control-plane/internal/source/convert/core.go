package convert

import (
	"maps"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// lastApplied is kubectl's copy of the whole object; the mesh never reads
// it, so it is not copied into the model.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

func objectMeta(m *metav1.ObjectMeta) model.ObjectMeta {
	return model.ObjectMeta{
		Namespace:   m.Namespace,
		Name:        m.Name,
		UID:         string(m.UID),
		Generation:  m.Generation,
		Created:     m.CreationTimestamp.Time,
		Labels:      maps.Clone(m.Labels),
		Annotations: annotations(m.Annotations),
	}
}

func annotations(a map[string]string) map[string]string {
	if _, ok := a[lastApplied]; !ok {
		return maps.Clone(a)
	}
	out := maps.Clone(a)
	delete(out, lastApplied)
	return out
}

// Namespace converts a Namespace.
func Namespace(ns *corev1.Namespace) *model.Namespace {
	return &model.Namespace{Name: ns.Name, Labels: maps.Clone(ns.Labels), Annotations: annotations(ns.Annotations)}
}

// Pod converts a Pod. Workload comes from the ownerReference with
// controller: true and the labels (model.WorkloadName).
func Pod(p *corev1.Pod) *model.Pod {
	var ownerKind, ownerName string
	if o := metav1.GetControllerOfNoCopy(p); o != nil {
		ownerKind, ownerName = o.Kind, o.Name
	}
	return &model.Pod{
		Namespace:      p.Namespace,
		Name:           p.Name,
		UID:            string(p.UID),
		NodeName:       p.Spec.NodeName,
		ServiceAccount: p.Spec.ServiceAccountName,
		IP:             p.Status.PodIP,
		HostNetwork:    p.Spec.HostNetwork,
		Labels:         maps.Clone(p.Labels),
		Annotations:    annotations(p.Annotations),
		Workload:       model.WorkloadName(ownerKind, ownerName, p.Labels, p.Name),
	}
}

// Service converts a Service, applying the core API defaults: type
// ClusterIP, protocol TCP, and targetPort equal to port when unset.
// clusterIP "None" (headless) gives no ClusterIPs.
func Service(s *corev1.Service) (*model.Service, error) {
	c := newChecker("Service", s.Namespace, s.Name)
	out := &model.Service{
		ObjectMeta: objectMeta(&s.ObjectMeta),
		Type:       string(s.Spec.Type),
		Selector:   maps.Clone(s.Spec.Selector),
	}
	if out.Type == "" {
		out.Type = string(corev1.ServiceTypeClusterIP)
	}
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	for i, ip := range ips {
		if ip == corev1.ClusterIPNone {
			out.ClusterIPs = nil
			break
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			c.addf(idx("spec.clusterIPs", i), "%q is not an IP address", ip)
			continue
		}
		out.ClusterIPs = append(out.ClusterIPs, ip)
	}
	for i, p := range s.Spec.Ports {
		path := idx("spec.ports", i)
		c.intRange(path+".port", int64(p.Port), 1, 65535)
		sp := model.ServicePort{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol)}
		if sp.Protocol == "" {
			sp.Protocol = string(corev1.ProtocolTCP)
		}
		if p.AppProtocol != nil {
			sp.AppProtocol = *p.AppProtocol
		}
		switch {
		case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
			sp.TargetPortName = p.TargetPort.StrVal
		case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal != 0:
			c.intRange(path+".targetPort", int64(p.TargetPort.IntVal), 1, 65535)
			sp.TargetPort = p.TargetPort.IntVal
		default:
			sp.TargetPort = p.Port
		}
		out.Ports = append(out.Ports, sp)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// EndpointSlice converts an EndpointSlice. The slice must carry the label
// kubernetes.io/service-name; FQDN slices are refused (the mesh routes to
// IP addresses). An endpoint is Ready when it is serving and not
// terminating; a missing serving condition falls back to ready, and a
// missing ready condition means ready, as the discovery API says.
func EndpointSlice(es *discoveryv1.EndpointSlice) (*model.EndpointSlice, error) {
	c := newChecker("EndpointSlice", es.Namespace, es.Name)
	out := &model.EndpointSlice{ObjectMeta: objectMeta(&es.ObjectMeta), Service: es.Labels[discoveryv1.LabelServiceName]}
	if out.Service == "" {
		c.addf("metadata.labels", "missing %s, the name of the Service the slice belongs to", discoveryv1.LabelServiceName)
	}
	if es.AddressType == discoveryv1.AddressTypeFQDN {
		c.addf("addressType", "FQDN is not supported, only IPv4 and IPv6")
	}
	for _, p := range es.Ports {
		ep := model.EndpointPort{Name: deref(p.Name), Protocol: string(corev1.ProtocolTCP), AppProtocol: deref(p.AppProtocol)}
		if p.Protocol != nil {
			ep.Protocol = string(*p.Protocol)
		}
		if p.Port != nil {
			ep.Port = *p.Port // not range-checked: the apiserver does not either
		}
		out.Ports = append(out.Ports, ep)
	}
	for i, e := range es.Endpoints {
		path := idx("endpoints", i)
		if len(e.Addresses) == 0 {
			c.addf(path+".addresses", "required")
		}
		for j, a := range e.Addresses {
			if _, err := netip.ParseAddr(a); err != nil && es.AddressType != discoveryv1.AddressTypeFQDN {
				c.addf(idx(path+".addresses", j), "%q is not an IP address", a)
			}
		}
		ready := e.Conditions.Ready == nil || *e.Conditions.Ready
		serving := ready
		if e.Conditions.Serving != nil {
			serving = *e.Conditions.Serving
		}
		terminating := e.Conditions.Terminating != nil && *e.Conditions.Terminating
		me := model.Endpoint{
			Addresses: append([]string(nil), e.Addresses...),
			Ready:     serving && !terminating,
			NodeName:  deref(e.NodeName),
		}
		if r := e.TargetRef; r != nil && r.Kind == "Pod" && r.Name != "" {
			ns := r.Namespace
			if ns == "" {
				ns = es.Namespace
			}
			me.Pod = ns + "/" + r.Name
		}
		out.Endpoints = append(out.Endpoints, me)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return out, nil
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}
