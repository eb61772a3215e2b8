package status

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

func snapshot() *model.Snapshot {
	s := model.NewSnapshot()
	for _, name := range []string{"reviews", "reviews-v2"} {
		s.Services["shop/"+name] = &model.Service{ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: name},
			Ports: []model.ServicePort{{Name: "http", Port: 8080}}}
	}
	s.Services["other/api"] = &model.Service{ObjectMeta: model.ObjectMeta{Namespace: "other", Name: "api"},
		Ports: []model.ServicePort{{Name: "http", Port: 8080}}}
	return s
}

func route(name string, parents []model.ParentRef, rules ...model.RouteRule) *model.Route {
	return &model.Route{ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: name, Generation: 3},
		Kind: model.HTTPRoute, Parents: parents, Rules: rules}
}

var svcParent = model.ParentRef{Index: 0, Kind: "Service", Name: "reviews"}

func TestRoutes(t *testing.T) {
	ok := []Condition{{TypeAccepted, true, ReasonAccepted, "Route accepted by the mesh"}, {TypeResolvedRefs, true, ReasonResolvedRefs, "All references resolved"}}
	tests := []struct {
		name string
		r    *model.Route
		want []Parent
	}{
		{"canary", route("r", []model.ParentRef{svcParent}, model.RouteRule{Backends: []model.Backend{
			{Kind: "Service", Name: "reviews", Port: 8080, Weight: 90}, {Kind: "Service", Name: "reviews-v2", Port: 8080, Weight: 10}}}),
			[]Parent{{0, ok}}},
		{"missing backend", route("r", []model.ParentRef{svcParent}, model.RouteRule{Backends: []model.Backend{{Kind: "Service", Name: "gone", Port: 8080}}}),
			[]Parent{{0, []Condition{ok[0], {TypeResolvedRefs, false, ReasonBackendNotFound, "rules[0].backendRefs[0]: Service shop/gone not found"}}}}},
		{"missing backend port", route("r", []model.ParentRef{svcParent}, model.RouteRule{Backends: []model.Backend{{Kind: "Service", Name: "reviews", Port: 9}}}),
			[]Parent{{0, []Condition{ok[0], {TypeResolvedRefs, false, ReasonBackendNotFound, "rules[0].backendRefs[0]: Service shop/reviews has no port 9"}}}}},
		{"backend of another kind", route("r", []model.ParentRef{svcParent}, model.RouteRule{Backends: []model.Backend{{Group: "example.com", Kind: "Bucket", Name: "b"}}}),
			[]Parent{{0, []Condition{ok[0], {TypeResolvedRefs, false, ReasonInvalidKind, "rules[0].backendRefs[0]: example.com/Bucket is not a Service"}}}}},
		{"cross-namespace backend", route("r", []model.ParentRef{svcParent}, model.RouteRule{Backends: []model.Backend{{Kind: "Service", Namespace: "other", Name: "x"}}}),
			[]Parent{{0, []Condition{ok[0], {TypeResolvedRefs, false, ReasonRefNotPermitted, "rules[0].backendRefs[0]: Service other/x is in another namespace; cross-namespace backends are not supported"}}}}},
		{"consumer route sending to its parent Service", route("r", []model.ParentRef{{Index: 0, Kind: "Service", Namespace: "other", Name: "api"}},
			model.RouteRule{Backends: []model.Backend{{Kind: "Service", Namespace: "other", Name: "api"}}}),
			[]Parent{{0, ok}}},
		{"missing parent", route("r", []model.ParentRef{{Index: 0, Kind: "Service", Name: "nope"}}),
			[]Parent{{0, []Condition{{TypeAccepted, false, ReasonNoMatchingParent, "Service shop/nope not found"}, ok[1]}}}},
		{"parent port that does not exist", route("r", []model.ParentRef{{Index: 0, Kind: "Service", Name: "reviews", Port: 81}}),
			[]Parent{{0, []Condition{{TypeAccepted, false, ReasonNoMatchingParent, `Service shop/reviews has no port matching port 81 sectionName ""`}, ok[1]}}}},
		{"consumer route (parent in another namespace) is accepted", route("r", []model.ParentRef{{Index: 0, Kind: "Service", Namespace: "other", Name: "api"}}),
			[]Parent{{0, ok}}},
		{"unsupported filter", route("r", []model.ParentRef{svcParent}, model.RouteRule{UnsupportedFilters: []string{"URLRewrite"}}),
			[]Parent{{0, []Condition{{TypeAccepted, false, ReasonUnsupportedValue, "filters not supported by the mesh: URLRewrite"}, ok[1]}}}},
		{"gateway parent is not ours, the service parent keeps its index",
			route("r", []model.ParentRef{{Index: 0, Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "gw"}, {Index: 1, Kind: "Service", Name: "reviews"}}),
			[]Parent{{1, ok}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := snapshot()
			s.Routes[model.RouteKey(tc.r.Kind, tc.r.Namespace, tc.r.Name)] = tc.r
			got := Routes(s)
			if len(got) != 1 {
				t.Fatalf("got %d route statuses, want 1", len(got))
			}
			if diff := cmp.Diff(tc.want, got[0].Parents); diff != "" {
				t.Errorf("parents (-want +got):\n%s", diff)
			}
			if got[0].Generation != 3 {
				t.Errorf("generation = %d, want 3", got[0].Generation)
			}
		})
	}
}

func TestRouteWithOnlyGatewayParentsHasNoStatus(t *testing.T) {
	s := snapshot()
	s.Routes["x"] = route("r", []model.ParentRef{{Group: "gateway.networking.k8s.io", Kind: "Gateway", Name: "gw"}})
	if got := Routes(s); len(got) != 0 {
		t.Errorf("got %v, want no status for a route that is not attached to a Service", got)
	}
}

func TestPolicies(t *testing.T) {
	s := snapshot()
	s.TrafficPolicies["shop/tp"] = &model.TrafficPolicy{ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "tp", Generation: 2},
		Targets: []model.PolicyTarget{{Index: 0, Kind: "Service", Name: "reviews"}, {Index: 1, Kind: "Service", Name: "gone"},
			{Index: 2, Kind: "Service", Name: "reviews", SectionName: "grpc"}}}
	s.AuthorizationPolicies["shop/ap"] = &model.AuthorizationPolicy{ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "ap"},
		Targets: []model.PolicyTarget{{Index: 0, Kind: "Service", Name: "reviews"}}}
	got := Policies(s)
	want := []Policy{
		{Kind: "AuthorizationPolicy", Namespace: "shop", Name: "ap", Ancestors: []Ancestor{{0, "reviews", []Condition{{TypeAccepted, true, ReasonAccepted, "Policy accepted by the mesh"}}}}},
		{Kind: "TrafficPolicy", Namespace: "shop", Name: "tp", Generation: 2, Ancestors: []Ancestor{
			{0, "reviews", []Condition{{TypeAccepted, true, ReasonAccepted, "Policy accepted by the mesh"}}},
			{1, "gone", []Condition{{TypeAccepted, false, ReasonTargetNotFound, "Service shop/gone not found"}}},
			{2, "reviews", []Condition{{TypeAccepted, false, ReasonTargetNotFound, `Service shop/reviews has no port named "grpc"`}}},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
}
