package convert

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// DerivedSuffix ends the name of every EndpointSlice DeriveEndpointSlices
// makes: "<service>-derived", or "<service>-derived-<n>" when the Service's
// pods resolve its ports differently.
const DerivedSuffix = "-derived"

// DeriveEndpointSlices does what the EndpointSlice controller does in a
// cluster, for local mode where none runs: it selects the pods of svc (same
// namespace, labels matching the selector, a pod IP, not finished and not
// being deleted) and lists them as endpoints. An endpoint is Ready unless
// the pod has the condition Ready=False; its node is spec.nodeName. A
// targetPort given by name resolves to the container port of that name and
// protocol in each pod, so pods that resolve it differently land in
// separate slices, and a pod without that port is listed without it.
//
// A Service without a selector gets no slice (its endpoints are given by
// hand, as in a cluster); one whose selector matches no pod gets one empty
// slice. Groups are numbered in the order of their first pod by name.
func DeriveEndpointSlices(svc *model.Service, pods []*corev1.Pod) []*model.EndpointSlice {
	if len(svc.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Selector)
	var selected []*corev1.Pod
	for _, p := range pods {
		if p.Namespace != svc.Namespace || !sel.Matches(labels.Set(p.Labels)) || p.Status.PodIP == "" ||
			p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		selected = append(selected, p)
	}
	sort.Slice(selected, func(i, j int) bool { return selected[i].Name < selected[j].Name })

	type group struct {
		ports     []model.EndpointPort
		endpoints []model.Endpoint
	}
	var groups []*group
	byPorts := map[string]*group{}
	for _, p := range selected {
		ports := resolvePorts(svc, p)
		key := portsKey(ports)
		g := byPorts[key]
		if g == nil {
			g = &group{ports: ports}
			byPorts[key] = g
			groups = append(groups, g)
		}
		g.endpoints = append(g.endpoints, model.Endpoint{
			Addresses: []string{p.Status.PodIP},
			Ready:     podReady(p),
			NodeName:  p.Spec.NodeName,
			Pod:       p.Namespace + "/" + p.Name,
		})
	}
	if len(groups) == 0 {
		groups = []*group{{ports: resolvePorts(svc, nil)}}
	}
	out := make([]*model.EndpointSlice, 0, len(groups))
	for i, g := range groups {
		name := svc.Name + DerivedSuffix
		if len(groups) > 1 {
			name = fmt.Sprintf("%s-%d", name, i+1)
		}
		out = append(out, &model.EndpointSlice{
			ObjectMeta: model.ObjectMeta{Namespace: svc.Namespace, Name: name,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name}},
			Service:   svc.Name,
			Ports:     g.ports,
			Endpoints: g.endpoints,
		})
	}
	return out
}

// resolvePorts maps the Service's ports to pod ports; with a nil pod only
// numeric target ports resolve.
func resolvePorts(svc *model.Service, p *corev1.Pod) []model.EndpointPort {
	var out []model.EndpointPort
	for _, sp := range svc.Ports {
		port := sp.TargetPort
		if sp.TargetPortName != "" {
			port = containerPort(p, sp.TargetPortName, sp.Protocol)
		}
		if port == 0 {
			continue
		}
		out = append(out, model.EndpointPort{Name: sp.Name, Port: port, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
	}
	return out
}

func containerPort(p *corev1.Pod, name, protocol string) int32 {
	if p == nil {
		return 0
	}
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			proto := string(cp.Protocol)
			if proto == "" {
				proto = string(corev1.ProtocolTCP)
			}
			if cp.Name == name && proto == protocol {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

func portsKey(ports []model.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%d/%s;", p.Name, p.Port, p.Protocol)
	}
	return b.String()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status != corev1.ConditionFalse
		}
	}
	return true
}
