package route

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Builders for hand-made RouteConfigurations.

func rc(vhs ...*routev3.VirtualHost) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "test:80", VirtualHosts: vhs}
}

func vh(name string, domains []string, routes ...*routev3.Route) *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: name, Domains: domains, Routes: routes}
}

func to(name, cluster string, m *routev3.RouteMatch) *routev3.Route {
	return &routev3.Route{Name: name, Match: m, Action: &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}, Timeout: durationpb.New(0),
	}}}
}

func prefix(p string, hs ...*routev3.HeaderMatcher) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}, Headers: hs}
}

func exactStr(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

func regexStr(v string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: v}}}
}

func header(name string, sm *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func present(name string, v bool) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: v}}
}

func query(name string, sm *matcherv3.StringMatcher) *routev3.QueryParameterMatcher {
	return &routev3.QueryParameterMatcher{Name: name, QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}}
}

func TestVirtualHosts(t *testing.T) {
	tbl := mustCompile(t, rc(
		vh("a", []string{"a.example", "a.example:80"}, to("a", "ca", prefix("/"))),
		vh("b", []string{"b.example"}, to("b", "cb", prefix("/"))),
		vh("rest", []string{"*"}, to("rest", "cr", prefix("/"))),
	))
	runMatches(t, tbl, []matchCase{
		{"exact", Request{Path: "/", Host: "a.example"}, "a", "ca"},
		{"with port", Request{Path: "/", Host: "a.example:80"}, "a", "ca"},
		{"case-insensitive", Request{Path: "/", Host: "B.Example"}, "b", "cb"},
		{"other port falls to *", Request{Path: "/", Host: "b.example:8080"}, "rest", "cr"},
		{"unknown", Request{Path: "/", Host: "c"}, "rest", "cr"},
	})
	noStar := mustCompile(t, rc(vh("a", []string{"a"}, to("a", "ca", prefix("/")))))
	if _, ok := noStar.Match(&Request{Path: "/", Host: "b"}); ok {
		t.Error("Host in no virtual host and no \"*\": matched, want 404")
	}
}

func TestMatchers(t *testing.T) {
	tbl := mustCompile(t, rc(vh("vh", []string{"*"},
		to("sep", "c", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/sep"}}),
		to("fold", "c", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/Fold"}, CaseSensitive: wrapperspb.Bool(false)}),
		to("absent", "c", prefix("/absent", present("x-a", false))),
		to("present", "c", prefix("/present", present("x-a", true))),
		to("invert", "c", prefix("/invert", &routev3.HeaderMatcher{Name: "x-a", InvertMatch: true,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactStr("no")}})),
		to("empty", "c", prefix("/empty", &routev3.HeaderMatcher{Name: "x-a", TreatMissingHeaderAsEmpty: true,
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactStr("")}})),
		to("joined", "c", prefix("/joined", header("x-a", exactStr("1,2")))),
		to("kinds", "c", prefix("/kinds",
			header("x-p", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "ab"}}),
			header("x-s", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "yz"}, IgnoreCase: true}),
			header("x-c", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "mid"}, IgnoreCase: true}))),
		to("pseudo", "c", prefix("/pseudo", header(":authority", exactStr("h")), header(":path", exactStr("/pseudo?q=1")))),
		to("query", "c", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/query"},
			QueryParameters: []*routev3.QueryParameterMatcher{
				query("v", regexStr("[0-9]+")),
				{Name: "p", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}},
			}}),
	)))
	runMatches(t, tbl, []matchCase{
		{"separated prefix exact", Request{Path: "/sep"}, "sep", ""},
		{"separated prefix below", Request{Path: "/sep/x"}, "sep", ""},
		{"separated prefix partial segment", Request{Path: "/sepx"}, "", ""},
		{"case-insensitive path", Request{Path: "/fOLD"}, "fold", ""},
		{"absent", Request{Path: "/absent"}, "absent", ""},
		{"absent but present", Request{Path: "/absent", Header: hdr("X-A", "")}, "", ""},
		{"present", Request{Path: "/present", Header: hdr("X-A", "")}, "present", ""},
		{"present but absent", Request{Path: "/present"}, "", ""},
		{"invert other value", Request{Path: "/invert", Header: hdr("X-A", "yes")}, "invert", ""},
		{"invert missing", Request{Path: "/invert"}, "invert", ""},
		{"invert same value", Request{Path: "/invert", Header: hdr("X-A", "no")}, "", ""},
		{"missing as empty", Request{Path: "/empty"}, "empty", ""},
		{"values joined", Request{Path: "/joined", Header: hdr("X-A", "1", "X-A", "2")}, "joined", ""},
		{"prefix suffix contains", Request{Path: "/kinds", Header: hdr("X-P", "abc", "X-S", "xYZ", "X-C", "aMIDb")}, "kinds", ""},
		{"prefix is case-sensitive", Request{Path: "/kinds", Header: hdr("X-P", "ABc", "X-S", "xyz", "X-C", "mid")}, "", ""},
		{"authority and path", Request{Path: "/pseudo", RawQuery: "q=1", Host: "h"}, "pseudo", ""},
		{"path includes query", Request{Path: "/pseudo", RawQuery: "q=2", Host: "h"}, "", ""},
		{"query regex and present", Request{Path: "/query", RawQuery: "p&v=123"}, "query", ""},
		{"query regex full match", Request{Path: "/query", RawQuery: "p=&v=12a"}, "", ""},
		{"query not present", Request{Path: "/query", RawQuery: "v=1"}, "", ""},
	})
}

func TestRouteFields(t *testing.T) {
	fault, err := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 503}}})
	if err != nil {
		t.Fatal(err)
	}
	r := &routev3.Route{
		Name:  "r",
		Match: prefix("/"),
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{
				{Name: "a", Weight: wrapperspb.UInt32(3)}, {Name: "b", Weight: wrapperspb.UInt32(1)},
			}}},
		}},
		TypedPerFilterConfig: map[string]*anypb.Any{FaultFilterName: fault},
		RequestHeadersToAdd: []*corev3.HeaderValueOption{
			{Header: &corev3.HeaderValue{Key: "x-add", Value: "1"}},
			{Header: &corev3.HeaderValue{Key: "x-set", Value: "2"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
			{Header: &corev3.HeaderValue{Key: "x-absent", Value: "3"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
			{Header: &corev3.HeaderValue{Key: "x-ifexists", Value: "4"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS},
			{Header: &corev3.HeaderValue{Key: "x-empty"}},
			{Header: &corev3.HeaderValue{Key: "x-old", Value: "5"}, Append: wrapperspb.Bool(false)},
		},
		RequestHeadersToRemove: []string{"x-drop"},
	}
	rt, ok := mustCompile(t, rc(vh("vh", []string{"*"}, r))).Match(&Request{Path: "/"})
	if !ok {
		t.Fatal("no match")
	}
	if rt.Timeout != DefaultTimeout {
		t.Errorf("Timeout = %v, want Envoy's default %v", rt.Timeout, DefaultTimeout)
	}
	if got := rt.Fault.GetAbort().GetHttpStatus(); got != 503 {
		t.Errorf("fault abort = %d, want 503", got)
	}
	h := hdr("X-Add", "0", "X-Set", "0", "X-Absent", "0", "X-Drop", "0", "X-Old", "0")
	rt.RequestHeaders.Apply(h)
	want := http.Header{"X-Add": {"0", "1"}, "X-Set": {"2"}, "X-Absent": {"0"}, "X-Old": {"5"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("headers after Apply (-want +got):\n%s", diff)
	}
	if !rt.ResponseHeaders.Empty() {
		t.Errorf("ResponseHeaders = %+v, want empty", rt.ResponseHeaders)
	}
}

func TestPick(t *testing.T) {
	for _, n := range []int{2, 5, 20} { // linear and binary search
		r := &Route{}
		for i := range n {
			r.Backends = append(r.Backends, Backend{Cluster: string(rune('a' + i)), Weight: uint32(i + 1)})
			r.total += uint64(i + 1)
			r.cum = append(r.cum, r.total)
		}
		counts := map[string]int{}
		for i := range 10 * r.total {
			counts[r.Pick(i).Cluster]++
		}
		for _, b := range r.Backends {
			if got, want := counts[b.Cluster], 10*int(b.Weight); got != want {
				t.Errorf("n=%d: %s picked %d times, want %d", n, b.Cluster, got, want)
			}
		}
	}
	zero := &Route{Backends: []Backend{{Cluster: "a", Weight: 0}, {Cluster: "b", Weight: 1}}, cum: []uint64{0, 1}, total: 1}
	for i := range uint64(10) {
		if got := zero.Pick(i).Cluster; got != "b" {
			t.Fatalf("weight 0 backend picked: %s", got)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	ok := func() *routev3.Route { return to("r", "c", prefix("/")) }
	tests := []struct {
		name string
		rc   *routev3.RouteConfiguration
		want string
	}{
		{"nil", nil, "nil"},
		{"bad path regex", rc(vh("vh", []string{"*"}, to("bad", "c", &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "(["}}}))),
			`route 0 "bad": path: safe_regex "(["`},
		{"bad header regex", rc(vh("vh", []string{"*"}, ok(), to("bad", "c", prefix("/", header("x", regexStr("a(")))))),
			`route 1 "bad": header "x": safe_regex`},
		{"range match", rc(vh("vh", []string{"*"}, to("r", "c", prefix("/", &routev3.HeaderMatcher{Name: "x",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{}})))), "unsupported HeaderMatcher field(s): range_match"},
		{"connect matcher", rc(vh("vh", []string{"*"}, to("r", "c", &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_ConnectMatcher_{ConnectMatcher: &routev3.RouteMatch_ConnectMatcher{}}}))),
			"unsupported RouteMatch field(s): connect_matcher"},
		{"grpc matcher", rc(vh("vh", []string{"*"}, to("r", "c", &routev3.RouteMatch{
			PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}))),
			"unsupported RouteMatch field(s): grpc"},
		{"scheme pseudo-header", rc(vh("vh", []string{"*"}, to("r", "c", prefix("/", header(":scheme", exactStr("https")))))), "pseudo-header"},
		{"redirect regex rewrite", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_RegexRewrite{}}}})),
			"unsupported RedirectAction field(s): regex_rewrite"},
		{"redirect scheme", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{SchemeRewriteSpecifier: &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: "ftp"}}}})),
			"scheme_redirect \"ftp\""},
		{"redirect host", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "evil\r\nSet-Cookie: x"}}})),
			"characters a Location cannot carry"},
		{"regex rewrite", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
				RegexRewrite: &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "a+"}, Substitution: "/b"}}}})),
			`regex_rewrite: only the pattern "^/.*$"`},
		{"prefix rewrite without /", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "x"}}})),
			"rewrite paths must start with /"},
		{"cluster header", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_ClusterHeader{ClusterHeader: "x"}}}})),
			"cluster_header"},
		{"zero weights", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(0)}}}}}}})), "total weight is 0"},
		{"no match", rc(vh("vh", []string{"*"}, to("r", "c", nil))), "no match"},
		{"other per-filter config", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"),
			Action:               ok().Action,
			TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.cors": {}}})), `typed_per_filter_config "envoy.filters.http.cors"`},
		{"wildcard domain", rc(vh("vh", []string{"*.example"}, ok())), `domain "*.example"`},
		{"duplicate domain", rc(vh("a", []string{"x"}, ok()), vh("b", []string{"X"}, ok())), `domain "x" also in virtual host "a"`},
		{"set Host", rc(vh("vh", []string{"*"}, &routev3.Route{Name: "r", Match: prefix("/"), Action: ok().Action,
			RequestHeadersToRemove: []string{"host"}})), "Host is not supported"},
		{"vhost retry policy", rc(&routev3.VirtualHost{Name: "vh", Domains: []string{"*"}, RetryPolicy: &routev3.RetryPolicy{}}), "retry_policy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.rc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFromHTTP(t *testing.T) {
	hr := httptest.NewRequest("POST", "http://svc.ns:80/a%2Fb/c?x=1", nil)
	hr.Header.Set("X-A", "1")
	got := FromHTTP(hr)
	if got.Method != "POST" || got.Path != "/a%2Fb/c" || got.RawQuery != "x=1" || got.Host != "svc.ns:80" || got.Header.Get("x-a") != "1" {
		t.Errorf("FromHTTP = %+v", got)
	}
}
