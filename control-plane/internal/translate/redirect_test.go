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
