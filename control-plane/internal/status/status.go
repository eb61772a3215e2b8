// Package status computes, from the model alone, the Gateway API status the
// mesh reports: per HTTPRoute/GRPCRoute parentRef that is a Service (GAMMA),
// the Accepted and ResolvedRefs conditions; per TrafficPolicy and
// AuthorizationPolicy targetRef, the Accepted condition of the ancestor
// (the targeted Service). It is pure: the kubewriter subpackage writes the
// result to the API server.
//
// Reasons are Gateway API's:
//
//	Accepted=True   Accepted
//	Accepted=False  NoMatchingParent (the Service or its port does not exist)
//	                UnsupportedValue (a filter the mesh does not implement)
//	                (a consumer route, whose parent Service is in another
//	                namespace, is accepted: it applies to its namespace's
//	                clients)
//	ResolvedRefs=True  ResolvedRefs
//	ResolvedRefs=False BackendNotFound (Service or port missing)
//	                   InvalidKind (a backendRef that is not a Service)
//	                   RefNotPermitted (a backend in another namespace that
//	                   is not the route's parent Service: the mesh does not
//	                   read ReferenceGrants yet)
//
// Policies: Accepted=True/Accepted, or Accepted=False/TargetNotFound.
package status

import (
	"fmt"
	"sort"
	"strings"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// ControllerName is written in status.parents[].controllerName and
// status.ancestors[].controllerName.
const ControllerName = "weftmesh.io/mesh"

// Condition types and reasons.
const (
	TypeAccepted     = "Accepted"
	TypeResolvedRefs = "ResolvedRefs"

	ReasonAccepted         = "Accepted"
	ReasonResolvedRefs     = "ResolvedRefs"
	ReasonNoMatchingParent = "NoMatchingParent"
	ReasonUnsupportedValue = "UnsupportedValue"
	ReasonBackendNotFound  = "BackendNotFound"
	ReasonInvalidKind      = "InvalidKind"
	ReasonRefNotPermitted  = "RefNotPermitted"
	ReasonTargetNotFound   = "TargetNotFound"
)

// Condition is a computed condition; the writer adds timestamps and the
// observed generation.
type Condition struct {
	Type    string
	Status  bool
	Reason  string
	Message string
}

// Parent is the status of a route for one of its parentRefs.
type Parent struct {
	// Index into spec.parentRefs: the writer copies that ref exactly as the
	// user wrote it (tools like Flagger compare them).
	Index      int
	Conditions []Condition
}

// Route is the status of one route.
type Route struct {
	Kind       model.RouteKind
	Namespace  string
	Name       string
	Generation int64
	Parents    []Parent
}

// Ancestor is the status of a policy for one of its targetRefs.
type Ancestor struct {
	Index      int    // into spec.targetRefs
	Service    string // the targeted Service's name
	Conditions []Condition
}

// Policy is the status of one TrafficPolicy or AuthorizationPolicy.
type Policy struct {
	Kind       string // "TrafficPolicy" or "AuthorizationPolicy"
	Namespace  string
	Name       string
	Generation int64
	Ancestors  []Ancestor
}

// Routes computes the status of every route, sorted by kind, namespace and
// name. Parent refs that are not Services are not ours and are skipped.
func Routes(s *model.Snapshot) []Route {
	var out []Route
	for _, r := range s.Routes {
		rs := Route{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Generation: r.Generation}
		resolved := resolvedRefs(s, r)
		for _, p := range r.Parents {
			if !p.IsService() {
				continue
			}
			rs.Parents = append(rs.Parents, Parent{Index: p.Index,
				Conditions: []Condition{accepted(s, r, p), resolved}})
		}
		if len(rs.Parents) > 0 {
			out = append(out, rs)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return less(string(out[i].Kind), out[i].Namespace, out[i].Name, string(out[j].Kind), out[j].Namespace, out[j].Name)
	})
	return out
}

func accepted(s *model.Snapshot, r *model.Route, p model.ParentRef) Condition {
	ns := p.Namespace
	if ns == "" {
		ns = r.Namespace
	}
	svc, ok := s.Services[ns+"/"+p.Name]
	if !ok {
		return Condition{TypeAccepted, false, ReasonNoMatchingParent, fmt.Sprintf("Service %s/%s not found", ns, p.Name)}
	}
	if p.Port != 0 || p.SectionName != "" {
		found := false
		for _, sp := range svc.Ports {
			if (p.Port == 0 || sp.Port == p.Port) && (p.SectionName == "" || sp.Name == p.SectionName) {
				found = true
			}
		}
		if !found {
			return Condition{TypeAccepted, false, ReasonNoMatchingParent,
				fmt.Sprintf("Service %s/%s has no port matching port %d sectionName %q", ns, p.Name, p.Port, p.SectionName)}
		}
	}
	var unsupported []string
	for _, rule := range r.Rules {
		unsupported = append(unsupported, rule.UnsupportedFilters...)
	}
	if len(unsupported) > 0 {
		return Condition{TypeAccepted, false, ReasonUnsupportedValue,
			"filters not supported by the mesh: " + strings.Join(dedupe(unsupported), ", ")}
	}
	return Condition{TypeAccepted, true, ReasonAccepted, "Route accepted by the mesh"}
}

// resolvedRefs checks every backendRef of r; the first problem found (in
// rule and backend order) is reported. A backend in another namespace is
// allowed only when it is one of the route's parent Services (a consumer
// route sending to the Service it is attached to).
func resolvedRefs(s *model.Snapshot, r *model.Route) Condition {
	for i, rule := range r.Rules {
		for j, b := range rule.Backends {
			where := fmt.Sprintf("rules[%d].backendRefs[%d]", i, j)
			if b.Kind != "" && b.Kind != "Service" || (b.Group != "" && b.Group != "core") {
				return Condition{TypeResolvedRefs, false, ReasonInvalidKind,
					fmt.Sprintf("%s: %s/%s is not a Service", where, b.Group, b.Kind)}
			}
			ns := b.Namespace
			if ns == "" {
				ns = r.Namespace
			}
			if ns != r.Namespace && !isParent(r, ns, b.Name) {
				return Condition{TypeResolvedRefs, false, ReasonRefNotPermitted,
					fmt.Sprintf("%s: Service %s/%s is in another namespace; cross-namespace backends are not supported", where, ns, b.Name)}
			}
			svc, ok := s.Services[ns+"/"+b.Name]
			if !ok {
				return Condition{TypeResolvedRefs, false, ReasonBackendNotFound,
					fmt.Sprintf("%s: Service %s/%s not found", where, ns, b.Name)}
			}
			if b.Port != 0 && !hasPort(svc, b.Port) {
				return Condition{TypeResolvedRefs, false, ReasonBackendNotFound,
					fmt.Sprintf("%s: Service %s/%s has no port %d", where, ns, b.Name, b.Port)}
			}
		}
	}
	return Condition{TypeResolvedRefs, true, ReasonResolvedRefs, "All references resolved"}
}

func hasPort(svc *model.Service, port int32) bool {
	for _, p := range svc.Ports {
		if p.Port == port {
			return true
		}
	}
	return false
}

// Policies computes the status of every TrafficPolicy and
// AuthorizationPolicy, sorted by kind, namespace and name.
func Policies(s *model.Snapshot) []Policy {
	var out []Policy
	add := func(kind string, meta model.ObjectMeta, targets []model.PolicyTarget) {
		p := Policy{Kind: kind, Namespace: meta.Namespace, Name: meta.Name, Generation: meta.Generation}
		for _, t := range targets {
			c := Condition{TypeAccepted, true, ReasonAccepted, "Policy accepted by the mesh"}
			svc, ok := s.Services[meta.Namespace+"/"+t.Name]
			switch {
			case !ok:
				c = Condition{TypeAccepted, false, ReasonTargetNotFound, fmt.Sprintf("Service %s/%s not found", meta.Namespace, t.Name)}
			case t.SectionName != "" && !hasPortName(svc, t.SectionName):
				c = Condition{TypeAccepted, false, ReasonTargetNotFound, fmt.Sprintf("Service %s/%s has no port named %q", meta.Namespace, t.Name, t.SectionName)}
			}
			p.Ancestors = append(p.Ancestors, Ancestor{Index: t.Index, Service: t.Name, Conditions: []Condition{c}})
		}
		out = append(out, p)
	}
	for _, tp := range s.TrafficPolicies {
		add("TrafficPolicy", tp.ObjectMeta, tp.Targets)
	}
	for _, ap := range s.AuthorizationPolicies {
		add("AuthorizationPolicy", ap.ObjectMeta, ap.Targets)
	}
	sort.Slice(out, func(i, j int) bool {
		return less(string(out[i].Kind), out[i].Namespace, out[i].Name, string(out[j].Kind), out[j].Namespace, out[j].Name)
	})
	return out
}

func hasPortName(svc *model.Service, name string) bool {
	for _, p := range svc.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// less orders objects by kind, namespace and name.
func less(kindA, nsA, nameA, kindB, nsB, nameB string) bool {
	if kindA != kindB {
		return kindA < kindB
	}
	if nsA != nsB {
		return nsA < nsB
	}
	return nameA < nameB
}

// isParent reports whether Service ns/name is a parentRef of r.
func isParent(r *model.Route, ns, name string) bool {
	for _, p := range r.Parents {
		pns := p.Namespace
		if pns == "" {
			pns = r.Namespace
		}
		if p.IsService() && pns == ns && p.Name == name {
			return true
		}
	}
	return false
}
