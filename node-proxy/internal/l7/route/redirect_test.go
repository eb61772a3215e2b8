package route

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestRedirectLocation checks the Location of redirects as the Gateway API
// conformance tests (mesh redirect host/status, port, path, scheme) expect
// them, for the exact and the "/"-ended prefix routes translate makes of a
// path prefix.
func TestRedirectLocation(t *testing.T) {
	exact := func(p string) *routev3.RouteMatch {
		return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: p}}
	}
	for _, tc := range []struct {
		name   string
		match  *routev3.RouteMatch
		action *routev3.RedirectAction
		host   string
		path   string
		query  string
		want   string
		status int
	}{
		{"host", prefix("/hostname-redirect/"), &routev3.RedirectAction{HostRedirect: "example.org", ResponseCode: routev3.RedirectAction_FOUND},
			"echo", "/hostname-redirect/x", "", "http://example.org/hostname-redirect/x", 302},
		{"host keeps the request port", prefix("/"), &routev3.RedirectAction{HostRedirect: "example.org"},
			"echo:8080", "/a", "q=1", "http://example.org:8080/a?q=1", 301},
		{"port 80 is implied", prefix("/"), &routev3.RedirectAction{HostRedirect: "example.org"},
			"echo:80", "/a", "", "http://example.org/a", 301},
		{"port", prefix("/"), &routev3.RedirectAction{PortRedirect: 8083, ResponseCode: routev3.RedirectAction_FOUND},
			"echo:80", "/port", "", "http://echo:8083/port", 302},
		{"scheme drops the port", prefix("/"), &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}, ResponseCode: routev3.RedirectAction_FOUND},
			"echo:8080", "/s", "", "https://echo/s", 302},
		{"scheme and port 443", prefix("/"), &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "https"}, PortRedirect: 443},
			"echo", "/s", "", "https://echo/s", 301},
		{"full path", prefix("/full/"), &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/full-path-replacement"}, ResponseCode: routev3.RedirectAction_TEMPORARY_REDIRECT},
			"echo", "/full/path/original", "", "http://echo/full-path-replacement", 307},
		{"prefix, longer path", prefix("/original-prefix/"), &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/replacement-prefix/"}, ResponseCode: routev3.RedirectAction_SEE_OTHER},
			"echo", "/original-prefix/lemon", "", "http://echo/replacement-prefix/lemon", 303},
		{"prefix, exact path", exact("/path-and-host"), &routev3.RedirectAction{HostRedirect: "example.org", PathRewriteSpecifier: &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/replacement-prefix"}, ResponseCode: routev3.RedirectAction_PERMANENT_REDIRECT},
			"echo", "/path-and-host", "", "http://example.org/replacement-prefix", 308},
		{"IPv6 host", prefix("/"), &routev3.RedirectAction{PortRedirect: 9000},
			"[fd00::1]:80", "/", "", "http://[fd00::1]:9000/", 301},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tbl, err := Compile(rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: tc.match,
				Action: &routev3.Route_Redirect{Redirect: tc.action}})))
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Method: "GET", Path: tc.path, RawQuery: tc.query, Host: tc.host}
			rt, ok := tbl.Match(req)
			if !ok || rt.Redirect == nil {
				t.Fatalf("no redirect route matched %s: %+v", tc.path, rt)
			}
			if got := rt.Location(req, "http"); got != tc.want {
				t.Errorf("Location = %q, want %q", got, tc.want)
			}
			if rt.Redirect.Status != tc.status {
				t.Errorf("status %d, want %d", rt.Redirect.Status, tc.status)
			}
		})
	}
}

// A backend's header changes apply after the route's and win a
// conflicting set; a backend without its own uses the route's.
func TestBackendHeaderMods(t *testing.T) {
	set := func(name, value string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, Value: value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	tbl, err := Compile(rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
		RequestHeadersToAdd:  []*corev3.HeaderValueOption{set("x-rule", "yes"), set("x-backend", "rule")},
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{set("x-rule-resp", "yes")},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(1), RequestHeadersToAdd: []*corev3.HeaderValueOption{set("x-backend", "a")}},
				{Name: "b", Weight: wrapperspb.UInt32(1)},
			}}}}}})))
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := tbl.Match(&Request{Path: "/"})
	apply := func(b *Backend) http.Header {
		h := http.Header{"X-Backend": {"client"}}
		if m := rt.RequestMods(b); m != nil {
			m.Apply(h)
		}
		return h
	}
	if h := apply(&rt.Backends[0]); h.Get("X-Backend") != "a" || len(h["X-Backend"]) != 1 || h.Get("X-Rule") != "yes" {
		t.Errorf("backend a: %v, want x-backend a (once) and x-rule yes", h)
	}
	if h := apply(&rt.Backends[1]); h.Get("X-Backend") != "rule" || h.Get("X-Rule") != "yes" {
		t.Errorf("backend b: %v, want the route's changes", h)
	}
	for i := range rt.Backends {
		h := http.Header{}
		if m := rt.ResponseMods(&rt.Backends[i]); m != nil {
			m.Apply(h)
		}
		if h.Get("X-Rule-Resp") != "yes" {
			t.Errorf("backend %s response: %v, want the route's x-rule-resp", rt.Backends[i].Cluster, h)
		}
	}
	var none *Route
	if none.ResponseMods(&rt.Backends[0]) != nil || none.RequestMods(&rt.Backends[0]) != nil {
		t.Error("no route (an interim response): want no header changes")
	}
}

// A prefix replaced by "/" (translate's form of an empty ReplacePrefixMatch)
// strips the matched prefix.
func TestRewriteStripsPrefix(t *testing.T) {
	for _, tc := range []struct {
		match *routev3.RouteMatch
		path  string
		want  string
	}{
		{prefix("/foo/"), "/foo/bar", "/bar"},
		{&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/foo"}}, "/foo", "/"},
	} {
		tbl, err := Compile(rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: tc.match,
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "/"}}})))
		if err != nil {
			t.Fatal(err)
		}
		req := &Request{Path: tc.path}
		rt, _ := tbl.Match(req)
		if got, ok := rt.RewritePath(req); !ok || got != tc.want {
			t.Errorf("%s: rewritten to %q (%v), want %q", tc.path, got, ok, tc.want)
		}
	}
}
