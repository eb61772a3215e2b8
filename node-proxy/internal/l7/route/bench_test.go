package route

import (
	"fmt"
	"math/rand/v2"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// benchTable is a realistic port with 20 routes: exact paths with method
// matches, prefixes with header matches, query parameters, two path
// regexes and a header regex, last a catch-all under /last.
func benchTable(b *testing.B) *Table {
	var routes []*routev3.Route
	routes = append(routes, to("first", "c0", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/api/login"},
		Headers: []*routev3.HeaderMatcher{header(":method", exactStr("POST"))}}))
	for i := 1; i < 19; i++ {
		var m *routev3.RouteMatch
		switch i % 6 {
		case 0:
			m = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: fmt.Sprintf("/api/v%d", i)},
				Headers: []*routev3.HeaderMatcher{header(":method", exactStr("GET"))}}
		case 1:
			m = prefix(fmt.Sprintf("/api/v%d/", i), header("x-canary", exactStr("true")))
		case 2:
			m = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regexStr(fmt.Sprintf("/items/%d/[0-9]+", i)).GetSafeRegex()}}
		case 3:
			m = prefix(fmt.Sprintf("/svc%d/", i), header("x-tenant", regexStr("blue|green")))
		case 4:
			m = &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/q%d/", i)},
				QueryParameters: []*routev3.QueryParameterMatcher{query("debug", exactStr("1"))}}
		case 5:
			m = prefix(fmt.Sprintf("/pkg.Service%d/", i), present("x-user", true))
		}
		routes = append(routes, to(fmt.Sprintf("r%d", i), fmt.Sprintf("c%d", i), m))
	}
	last := to("last", "c-last", prefix("/last/", header("x-canary", exactStr("true"))))
	last.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
		Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "v1", Weight: wrapperspb.UInt32(90)}, {Name: "v2", Weight: wrapperspb.UInt32(10)}}}}
	routes = append(routes, last)
	domains := []string{"api.shop.svc.cluster.local:80", "api.shop.svc.cluster.local", "api.shop.svc:80", "api.shop.svc", "api.shop:80", "api.shop", "api:80", "api", "10.96.0.1:80", "10.96.0.1", "*"}
	return mustCompile(b, rc(vh("api.shop.svc.cluster.local:80", domains, routes...)))
}

func BenchmarkMatch(b *testing.B) {
	tbl := benchTable(b)
	h := hdr("X-Canary", "true", "X-Tenant", "red", "X-User", "u", "Accept", "*/*", "User-Agent", "bench")
	cases := []struct {
		name  string
		req   Request
		route string
	}{
		{"first", Request{Method: "POST", Path: "/api/login", Host: "api.shop", Header: h}, "first"},
		{"last", Request{Method: "GET", Path: "/last/x", RawQuery: "a=b&debug=0", Host: "api.shop", Header: h}, "last"},
		{"miss", Request{Method: "GET", Path: "/nothing/here", RawQuery: "debug=1", Host: "api.shop", Header: h}, ""},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			rt, ok := tbl.Match(&c.req)
			if ok != (c.route != "") || ok && rt.Name != c.route {
				b.Fatalf("Match = %v, %v, want %q", rt, ok, c.route)
			}
			b.ReportAllocs()
			for b.Loop() {
				tbl.Match(&c.req)
			}
		})
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{2, 16} {
		r := &Route{}
		for i := range n {
			r.Backends = append(r.Backends, Backend{Cluster: fmt.Sprint(i), Weight: uint32(10 * (i + 1))})
			r.total += uint64(10 * (i + 1))
			r.cum = append(r.cum, r.total)
		}
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			rnd := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for b.Loop() {
				r.Pick(rnd.Uint64())
			}
		})
	}
}
