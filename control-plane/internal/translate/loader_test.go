package translate

// A test-only loader: Kubernetes YAML (the objects a user writes) into a
// model.Snapshot. It is deliberately small and lenient; the real
// conversion, with validation and status, lives in internal/source.
// Services with no EndpointSlice in the input get one derived from their
// selector (every matching pod with an IP is ready), the way local mode
// does it.

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

func loadYAML(data []byte) (*model.Snapshot, error) {
	s := model.NewSnapshot()
	for i, doc := range bytes.Split(append([]byte("\n"), data...), []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if err := loadObject(s, tm.Kind, doc); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, tm.Kind, err)
		}
	}
	deriveEndpointSlices(s)
	return s, nil
}

func decode[T any](doc []byte) (*T, error) {
	var v T
	return &v, yaml.UnmarshalStrict(doc, &v)
}

func loadObject(s *model.Snapshot, kind string, doc []byte) error {
	switch kind {
	case "Namespace":
		o, err := decode[corev1.Namespace](doc)
		if err != nil {
			return err
		}
		s.Namespaces[o.Name] = &model.Namespace{Name: o.Name, Labels: o.Labels, Annotations: o.Annotations}
	case "Pod":
		o, err := decode[corev1.Pod](doc)
		if err != nil {
			return err
		}
		p := &model.Pod{Namespace: o.Namespace, Name: o.Name, UID: string(o.UID), NodeName: o.Spec.NodeName,
			ServiceAccount: o.Spec.ServiceAccountName, IP: o.Status.PodIP, HostNetwork: o.Spec.HostNetwork,
			Labels: o.Labels, Annotations: o.Annotations}
		var ownerKind, ownerName string
		if c := metav1.GetControllerOfNoCopy(o); c != nil {
			ownerKind, ownerName = c.Kind, c.Name
		}
		p.Workload = model.WorkloadName(ownerKind, ownerName, o.Labels, o.Name)
		s.Pods[p.Key()] = p
	case "Service":
		o, err := decode[corev1.Service](doc)
		if err != nil {
			return err
		}
		svc := &model.Service{ObjectMeta: meta(o.ObjectMeta), ClusterIPs: o.Spec.ClusterIPs, Type: string(o.Spec.Type), Selector: o.Spec.Selector}
		if len(svc.ClusterIPs) == 0 && o.Spec.ClusterIP != "" {
			svc.ClusterIPs = []string{o.Spec.ClusterIP}
		}
		for _, p := range o.Spec.Ports {
			sp := model.ServicePort{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol), AppProtocol: deref(p.AppProtocol)}
			if sp.Protocol == "" {
				sp.Protocol = "TCP"
			}
			switch {
			case p.TargetPort.StrVal != "":
				sp.TargetPortName = p.TargetPort.StrVal
			case p.TargetPort.IntVal != 0:
				sp.TargetPort = p.TargetPort.IntVal
			default:
				sp.TargetPort = p.Port
			}
			svc.Ports = append(svc.Ports, sp)
		}
		s.Services[svc.Key()] = svc
	case "EndpointSlice":
		o, err := decode[discoveryv1.EndpointSlice](doc)
		if err != nil {
			return err
		}
		es := &model.EndpointSlice{ObjectMeta: meta(o.ObjectMeta), Service: o.Labels[discoveryv1.LabelServiceName]}
		for _, p := range o.Ports {
			es.Ports = append(es.Ports, model.EndpointPort{Name: deref(p.Name), Port: deref(p.Port), Protocol: string(deref(p.Protocol))})
		}
		for _, e := range o.Endpoints {
			ep := model.Endpoint{Addresses: e.Addresses, Ready: e.Conditions.Ready == nil || *e.Conditions.Ready, NodeName: deref(e.NodeName)}
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				ep.Pod = o.Namespace + "/" + e.TargetRef.Name
			}
			es.Endpoints = append(es.Endpoints, ep)
		}
		s.EndpointSlices[es.Key()] = es
	case "HTTPRoute":
		o, err := decode[gwv1.HTTPRoute](doc)
		if err != nil {
			return err
		}
		r := &model.Route{ObjectMeta: meta(o.ObjectMeta), Kind: model.HTTPRoute, Parents: parents(o.Spec.ParentRefs, o.Namespace)}
		for _, rule := range o.Spec.Rules {
			r.Rules = append(r.Rules, httpRule(rule))
		}
		s.Routes[model.RouteKey(r.Kind, r.Namespace, r.Name)] = r
	case "GRPCRoute":
		o, err := decode[gwv1.GRPCRoute](doc)
		if err != nil {
			return err
		}
		r := &model.Route{ObjectMeta: meta(o.ObjectMeta), Kind: model.GRPCRoute, Parents: parents(o.Spec.ParentRefs, o.Namespace)}
		for _, rule := range o.Spec.Rules {
			r.Rules = append(r.Rules, grpcRule(rule))
		}
		s.Routes[model.RouteKey(r.Kind, r.Namespace, r.Name)] = r
	case "TrafficPolicy":
		o, err := decode[v1alpha1.TrafficPolicy](doc)
		if err != nil {
			return err
		}
		tp, err := trafficPolicy(o)
		if err != nil {
			return err
		}
		s.TrafficPolicies[tp.Key()] = tp
	case "AuthorizationPolicy":
		o, err := decode[v1alpha1.AuthorizationPolicy](doc)
		if err != nil {
			return err
		}
		ap := &model.AuthorizationPolicy{ObjectMeta: meta(o.ObjectMeta), Targets: targets(o.Spec.TargetRefs), Action: model.AuthorizationAction(o.Spec.Action)}
		for _, r := range o.Spec.Rules {
			mr := model.AuthorizationRule{}
			for _, f := range r.From {
				mr.From = append(mr.From, model.AuthorizationSource{Identities: f.Identities, Namespaces: f.Namespaces})
			}
			for _, t := range r.To {
				mr.To = append(mr.To, model.AuthorizationOperation{Ports: t.Ports, Methods: t.Methods, Paths: t.Paths})
			}
			ap.Rules = append(ap.Rules, mr)
		}
		s.AuthorizationPolicies[ap.Key()] = ap
	default:
		return fmt.Errorf("kind %q not understood by the test loader", kind)
	}
	return nil
}

func meta(o metav1.ObjectMeta) model.ObjectMeta {
	return model.ObjectMeta{Namespace: o.Namespace, Name: o.Name, UID: string(o.UID), Generation: o.Generation,
		Created: o.CreationTimestamp.Time, Labels: o.Labels, Annotations: o.Annotations}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func parents(refs []gwv1.ParentReference, ns string) []model.ParentRef {
	var out []model.ParentRef
	for i, p := range refs {
		pr := model.ParentRef{Index: i, Group: string(deref(p.Group)), Kind: string(deref(p.Kind)), Namespace: string(deref(p.Namespace)),
			Name: string(p.Name), SectionName: string(deref(p.SectionName)), Port: deref(p.Port)}
		if p.Kind == nil {
			pr.Kind = "Gateway" // Gateway API's default: not ours
		}
		if pr.Namespace == "" {
			pr.Namespace = ns
		}
		out = append(out, pr)
	}
	return out
}

func backend(b gwv1.BackendRef) model.Backend {
	mb := model.Backend{Group: string(deref(b.Group)), Kind: string(deref(b.Kind)), Namespace: string(deref(b.Namespace)),
		Name: string(b.Name), Port: deref(b.Port), Weight: 1}
	if b.Kind == nil {
		mb.Kind = "Service"
	}
	if b.Weight != nil {
		mb.Weight = *b.Weight
	}
	return mb
}

func headerModifier(h *gwv1.HTTPHeaderFilter) *model.HeaderModifier {
	m := &model.HeaderModifier{Remove: h.Remove}
	for _, s := range h.Set {
		m.Set = append(m.Set, model.Header{Name: string(s.Name), Value: s.Value})
	}
	for _, a := range h.Add {
		m.Add = append(m.Add, model.Header{Name: string(a.Name), Value: a.Value})
	}
	return m
}

func httpRule(rule gwv1.HTTPRouteRule) model.RouteRule {
	var mr model.RouteRule
	for _, m := range rule.Matches {
		mm := model.RouteMatch{Method: string(deref(m.Method))}
		if m.Path != nil {
			t := model.MatchPathPrefix
			if m.Path.Type != nil {
				t = model.MatchType(*m.Path.Type)
			}
			mm.Path = &model.StringMatch{Type: t, Value: deref(m.Path.Value)}
		}
		for _, h := range m.Headers {
			mm.Headers = append(mm.Headers, model.HeaderMatch{Name: string(h.Name), Type: matchType((*string)(h.Type)), Value: h.Value})
		}
		for _, q := range m.QueryParams {
			mm.QueryParams = append(mm.QueryParams, model.HeaderMatch{Name: string(q.Name), Type: matchType((*string)(q.Type)), Value: q.Value})
		}
		mr.Matches = append(mr.Matches, mm)
	}
	for _, b := range rule.BackendRefs {
		mr.Backends = append(mr.Backends, backend(b.BackendRef))
	}
	for _, f := range rule.Filters {
		switch f.Type {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			mr.RequestHeaders = headerModifier(f.RequestHeaderModifier)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			mr.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
		default:
			mr.UnsupportedFilters = append(mr.UnsupportedFilters, string(f.Type))
		}
	}
	if t := rule.Timeouts; t != nil {
		mr.Timeouts = &model.RouteTimeouts{Request: dur((*string)(t.Request)), BackendRequest: dur((*string)(t.BackendRequest))}
	}
	if r := rule.Retry; r != nil {
		mr.Retry = &model.RouteRetry{Backoff: dur((*string)(r.Backoff))}
		if r.Attempts != nil {
			mr.Retry.Attempts = int32(*r.Attempts)
		}
		for _, c := range r.Codes {
			mr.Retry.Codes = append(mr.Retry.Codes, int32(c))
		}
	}
	return mr
}

func grpcRule(rule gwv1.GRPCRouteRule) model.RouteRule {
	var mr model.RouteRule
	for _, m := range rule.Matches {
		var mm model.RouteMatch
		if m.Method != nil {
			mm.GRPCService, mm.GRPCMethod = deref(m.Method.Service), deref(m.Method.Method)
			mm.GRPCType = matchType((*string)(m.Method.Type))
		}
		for _, h := range m.Headers {
			mm.Headers = append(mm.Headers, model.HeaderMatch{Name: string(h.Name), Type: matchType((*string)(h.Type)), Value: h.Value})
		}
		mr.Matches = append(mr.Matches, mm)
	}
	for _, b := range rule.BackendRefs {
		mr.Backends = append(mr.Backends, backend(b.BackendRef))
	}
	for _, f := range rule.Filters {
		switch f.Type {
		case gwv1.GRPCRouteFilterRequestHeaderModifier:
			mr.RequestHeaders = headerModifier(f.RequestHeaderModifier)
		case gwv1.GRPCRouteFilterResponseHeaderModifier:
			mr.ResponseHeaders = headerModifier(f.ResponseHeaderModifier)
		default:
			mr.UnsupportedFilters = append(mr.UnsupportedFilters, string(f.Type))
		}
	}
	return mr
}

func matchType(t *string) model.MatchType {
	if t == nil || *t == "" {
		return model.MatchExact
	}
	return model.MatchType(*t)
}

func dur[T ~string](s *T) time.Duration {
	if s == nil {
		return 0
	}
	d, err := time.ParseDuration(string(*s))
	if err != nil {
		panic(fmt.Sprintf("test input: duration %q: %v", *s, err))
	}
	return d
}

func targets(refs []v1alpha1.ServiceTargetRef) []model.PolicyTarget {
	var out []model.PolicyTarget
	for i, t := range refs {
		kind := t.Kind
		if kind == "" {
			kind = "Service"
		}
		out = append(out, model.PolicyTarget{Index: i, Group: t.Group, Kind: kind, Name: t.Name, SectionName: t.SectionName})
	}
	return out
}

var grpcCodes = map[v1alpha1.GRPCStatus]int32{
	"CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
	"ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
	"ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
	"DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}

func trafficPolicy(o *v1alpha1.TrafficPolicy) (*model.TrafficPolicy, error) {
	sp := o.Spec
	tp := &model.TrafficPolicy{ObjectMeta: meta(o.ObjectMeta), Targets: targets(sp.TargetRefs)}
	if r := sp.Retry; r != nil {
		mr := &model.RetryPolicy{Attempts: r.Attempts, PerTryTimeout: dur(r.PerTryTimeout), RetriableStatusCodes: r.RetriableStatusCodes}
		for _, on := range r.RetryOn {
			mr.RetryOn = append(mr.RetryOn, string(on))
		}
		if b := r.Backoff; b != nil {
			mr.BackoffBase, mr.BackoffMax = dur(b.BaseInterval), dur(b.MaxInterval)
		}
		if b := r.Budget; b != nil {
			mr.BudgetPercent, mr.BudgetMinPerSecond = int32(deref(b.Percent)), deref(b.MinRetriesPerSecond)
		}
		tp.Retry = mr
	}
	if t := sp.Timeouts; t != nil {
		tp.Timeouts = &model.TimeoutPolicy{Request: dur(t.Request), Idle: dur(t.Idle)}
	}
	if f := sp.Faults; f != nil {
		mf := &model.FaultPolicy{}
		if d := f.Delay; d != nil {
			mf.Delay, mf.DelayPercent = dur(&d.FixedDelay), int32(d.Percentage)
		}
		if a := f.Abort; a != nil {
			mf.AbortPercent, mf.AbortHTTP = int32(a.Percentage), deref(a.HTTPStatus)
			if a.GRPCStatus != nil {
				c, ok := grpcCodes[*a.GRPCStatus]
				if !ok {
					return nil, fmt.Errorf("unknown gRPC status %q", *a.GRPCStatus)
				}
				mf.AbortGRPCCode = c
			}
		}
		tp.Faults = mf
	}
	if lb := sp.LoadBalancer; lb != nil {
		tp.LoadBalancer = model.LoadBalancerAlgorithm(lb.Algorithm)
	}
	if od := sp.OutlierDetection; od != nil {
		tp.OutlierDetection = &model.OutlierDetection{Consecutive5xx: deref(od.Consecutive5xxErrors),
			ConsecutiveGatewayErrors: deref(od.ConsecutiveGatewayErrors), Interval: dur(od.Interval),
			BaseEjectionTime: dur(od.BaseEjectionTime), MaxEjectionPercent: int32(deref(od.MaxEjectionPercent))}
	}
	if cl := sp.ConnectionLimits; cl != nil {
		tp.ConnectionLimits = &model.ConnectionLimits{MaxConnections: deref(cl.MaxConnections),
			MaxPendingRequests: deref(cl.MaxPendingRequests), MaxRequests: deref(cl.MaxRequests)}
	}
	return tp, nil
}

// deriveEndpointSlices gives every Service with a selector and no slice a
// slice of the pods it selects.
func deriveEndpointSlices(s *model.Snapshot) {
	has := map[string]bool{}
	for _, es := range s.EndpointSlices {
		has[es.Namespace+"/"+es.Service] = true
	}
	for key, svc := range s.Services {
		if has[key] || len(svc.Selector) == 0 {
			continue
		}
		es := &model.EndpointSlice{ObjectMeta: model.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name + "-derived"}, Service: svc.Name}
		for _, p := range svc.Ports {
			if p.TargetPort != 0 {
				es.Ports = append(es.Ports, model.EndpointPort{Name: p.Name, Port: p.TargetPort, Protocol: p.Protocol})
			}
		}
		var pods []*model.Pod
		for _, p := range s.Pods {
			if selects(svc, p) && p.IP != "" {
				pods = append(pods, p)
			}
		}
		sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
		for _, p := range pods {
			es.Endpoints = append(es.Endpoints, model.Endpoint{Addresses: []string{p.IP}, Ready: true, NodeName: p.NodeName, Pod: p.Key()})
		}
		s.EndpointSlices[es.Key()] = es
	}
}

// splitFields parses "key: value" lines.
func splitFields(b []byte) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}
