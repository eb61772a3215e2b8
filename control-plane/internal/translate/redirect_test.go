package translate

import (
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// A RequestRedirect becomes an Envoy redirect; a prefix rewrite gets the
// trailing "/" on the "/"-ended prefix route a Gateway API path prefix
// compiles into, and not on its exact-path route.
func TestRedirectRoutes(t *testing.T) {
	repl := "/new"
	rd := &model.RouteRedirect{Hostname: "example.org", Port: 8083, Scheme: "https", StatusCode: 307, ReplacePrefixMatch: &repl}
	tmpl := &routev3.Route{Action: &routev3.Route_Redirect{Redirect: redirectAction(rd)}}
	ms := httpRouteMatches(model.RouteMatch{Path: &model.StringMatch{Type: model.MatchPathPrefix, Value: "/old"}})
	if len(ms) != 2 {
		t.Fatalf("%d matches for a path prefix, want 2", len(ms))
	}
	want := map[string]string{"/old": "/new", "/old/": "/new/"}
	for _, m := range ms {
		r := withMatch(tmpl, "r", m)
		a := r.GetRedirect()
		key := m.GetPath() + m.GetPrefix()
		if a.GetPrefixRewrite() != want[key] {
			t.Errorf("match %s: prefix_rewrite %q, want %q", key, a.GetPrefixRewrite(), want[key])
		}
		if a.GetHostRedirect() != "example.org" || a.GetPortRedirect() != 8083 || a.GetSchemeRedirect() != "https" ||
			a.GetResponseCode() != routev3.RedirectAction_TEMPORARY_REDIRECT {
			t.Errorf("match %s: redirect %v", key, a)
		}
	}
	if got := tmpl.GetRedirect().GetPrefixRewrite(); got != "/new" {
		t.Errorf("the template was changed: prefix_rewrite %q", got)
	}
	full := "/x"
	if a := redirectAction(&model.RouteRedirect{StatusCode: 302, ReplaceFullPath: &full}); a.GetPathRedirect() != "/x" ||
		a.GetResponseCode() != routev3.RedirectAction_FOUND || a.GetSchemeRedirect() != "" {
		t.Errorf("full path redirect: %v", a)
	}
}

// A URLRewrite's prefix rewrite gets the same per-match adjustment.
func TestRewritePrefixPerMatch(t *testing.T) {
	tmpl := &routev3.Route{Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: "c"},
		PrefixRewrite:        "/v2",
		HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "h.example"}}}}
	for _, m := range httpRouteMatches(model.RouteMatch{Path: &model.StringMatch{Type: model.MatchPathPrefix, Value: "/api"}}) {
		got := withMatch(tmpl, "r", m).GetRoute()
		want := map[string]string{"/api": "/v2", "/api/": "/v2/"}[m.GetPath()+m.GetPrefix()]
		if got.GetPrefixRewrite() != want || got.GetHostRewriteLiteral() != "h.example" || got.GetCluster() != "c" {
			t.Errorf("match %s: %v, want prefix_rewrite %q", m.GetPath()+m.GetPrefix(), got, want)
		}
	}
	if tmpl.GetRoute().GetPrefixRewrite() != "/v2" {
		t.Error("the template was changed")
	}
}

// An empty ReplacePrefixMatch strips the matched prefix.
func TestEmptyPrefixReplacement(t *testing.T) {
	empty := ""
	tmpl := &routev3.Route{Action: &routev3.Route_Redirect{Redirect: redirectAction(&model.RouteRedirect{StatusCode: 302, ReplacePrefixMatch: &empty})}}
	for _, m := range httpRouteMatches(model.RouteMatch{Path: &model.StringMatch{Type: model.MatchPathPrefix, Value: "/foo"}}) {
		if got := withMatch(tmpl, "r", m).GetRedirect().GetPrefixRewrite(); got != "/" {
			t.Errorf("match %s: prefix_rewrite %q, want /", m.GetPath()+m.GetPrefix(), got)
		}
	}
}
