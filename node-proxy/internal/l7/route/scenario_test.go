package route

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// The RouteConfigurations of these tests are the ones translate's
// scenario files expect, read from their want/routes.json sections, so a
// change in what translate emits shows up here too.
var scenarios = filepath.Join("..", "..", "..", "..", "control-plane", "internal", "translate", "testdata")

// loadScenario returns the RouteConfiguration named name in the expected
// routes of a translate scenario.
func loadScenario(t testing.TB, scenario, name string) *routev3.RouteConfiguration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(scenarios, scenario+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	const marker = "\n-- want/routes.json --\n"
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		t.Fatalf("%s: no want/routes.json section", scenario)
	}
	if i := strings.Index(rest, "\n-- "); i >= 0 {
		rest = rest[:i]
	}
	var raws []json.RawMessage
	if err := json.Unmarshal([]byte(rest), &raws); err != nil {
		t.Fatalf("%s: %v", scenario, err)
	}
	for _, raw := range raws {
		rc := new(routev3.RouteConfiguration)
		if err := protojson.Unmarshal(raw, rc); err != nil {
			t.Fatalf("%s: %v", scenario, err)
		}
		if rc.GetName() == name {
			return rc
		}
	}
	t.Fatalf("%s: no RouteConfiguration %q", scenario, name)
	return nil
}

func mustCompile(t testing.TB, rc *routev3.RouteConfiguration) *Table {
	t.Helper()
	tbl, err := Compile(rc)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

type matchCase struct {
	name    string
	req     Request
	route   string // "" means no match (404)
	cluster string // the first backend, when checked
}

func runMatches(t *testing.T, tbl *Table, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt, ok := tbl.Match(&tc.req)
			switch {
			case tc.route == "" && ok:
				t.Fatalf("Match = %q, want no match", rt.Name)
			case tc.route == "":
				return
			case !ok:
				t.Fatalf("Match = no match, want %q", tc.route)
			case rt.Name != tc.route:
				t.Fatalf("Match = %q, want %q", rt.Name, tc.route)
			case tc.cluster != "" && rt.Backends[0].Cluster != tc.cluster:
				t.Fatalf("cluster = %q, want %q", rt.Backends[0].Cluster, tc.cluster)
			}
		})
	}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestScenarioPathPrecedence(t *testing.T) {
	tbl := mustCompile(t, loadScenario(t, "path-precedence", "api.shop.svc.cluster.local:80"))
	const (
		v1 = "outbound|80||api-v1.shop.svc.cluster.local"
		v2 = "outbound|80||api-v2.shop.svc.cluster.local"
	)
	get := func(path, query string, h http.Header) Request {
		return Request{Method: "GET", Path: path, RawQuery: query, Host: "api.shop", Header: h}
	}
	runMatches(t, tbl, []matchCase{
		{"exact path and method", Request{Method: "POST", Path: "/api/login", Host: "api"}, "HTTPRoute/shop/api-old/rule/1/match/0", v2},
		{"exact path wrong method falls to prefix", get("/api/login", "", nil), "HTTPRoute/shop/api-old/rule/0/match/0", v1},
		{"regex", get("/api/items/42", "", nil), "HTTPRoute/shop/api-new/rule/1/match/0", v2},
		{"regex is a full match", get("/api/items/42x", "", nil), "HTTPRoute/shop/api-old/rule/0/match/0", v1},
		{"longer prefix exact", get("/api/v2", "", nil), "HTTPRoute/shop/api-old/rule/2/match/0", v2},
		{"longer prefix below", get("/api/v2/x", "", nil), "HTTPRoute/shop/api-old/rule/2/match/0", v2},
		{"prefix is segment-wise", get("/api/v2x", "", nil), "HTTPRoute/shop/api-old/rule/0/match/0", v1},
		{"method and header", get("/api/x", "", hdr("X-A", "1")), "HTTPRoute/shop/api-new/rule/2/match/0", v2},
		{"two headers incl. regex", Request{Method: "PUT", Path: "/api", Header: hdr("X-A", "1", "X-B", "bee")}, "HTTPRoute/shop/api-old/rule/3/match/0", v2},
		{"header regex is a full match", Request{Method: "PUT", Path: "/api", Header: hdr("X-A", "1", "X-B", "ab")}, "HTTPRoute/shop/api-old/rule/0/match/0", v1},
		{"query parameter", get("/api", "a=b&debug=1", nil), "HTTPRoute/shop/api-new/rule/0/match/0", v2},
		{"escaped query parameter", get("/api/y", "d%65bug=%31", nil), "HTTPRoute/shop/api-new/rule/0/match/0", v2},
		{"first query parameter wins", get("/api", "debug=0&debug=1", nil), "HTTPRoute/shop/api-old/rule/0/match/0", v1},
		{"older route on a tie", get("/api", "", nil), "HTTPRoute/shop/api-old/rule/0/match/0", v1},
		{"no match is a 404", get("/other", "", nil), "", ""},
		{"apix is not /api", get("/apix", "", nil), "", ""},
		{"any host reaches the service", Request{Method: "GET", Path: "/api", Host: "Example.COM."}, "HTTPRoute/shop/api-old/rule/0/match/0", v1},
	})
}

func TestScenarioGRPC(t *testing.T) {
	tbl := mustCompile(t, loadScenario(t, "grpc-route", "greeter.demo.svc.cluster.local:9090"))
	const (
		v1 = "outbound|9090||greeter-v1.demo.svc.cluster.local"
		v2 = "outbound|9090||greeter-v2.demo.svc.cluster.local"
	)
	call := func(path string, h http.Header) Request {
		return Request{Method: "POST", Path: path, Host: "greeter:9090", Header: h}
	}
	runMatches(t, tbl, []matchCase{
		{"service and method", call("/helloworld.Greeter/SayHello", nil), "GRPCRoute/demo/greeter/rule/1/match/0", v1},
		{"service", call("/helloworld.Greeter/SayBye", nil), "GRPCRoute/demo/greeter/rule/0/match/0", v1},
		{"service before method-only", call("/helloworld.Greeter/Check", hdr("x-tenant", "blue")), "GRPCRoute/demo/greeter/rule/0/match/0", v1},
		{"method with header", call("/grpc.health.v1.Health/Check", hdr("x-tenant", "blue")), "GRPCRoute/demo/greeter/rule/2/match/0", v2},
		{"method without header", call("/grpc.health.v1.Health/Check", nil), "", ""},
		{"regex", call("/helloworld.Streamer/StreamAll", nil), "GRPCRoute/demo/greeter/rule/3/match/0", v2},
		{"other service is a 404", call("/other.Svc/Do", nil), "", ""},
	})
	rt, _ := tbl.Match(&Request{Method: "POST", Path: "/helloworld.Greeter/SayHello"})
	if len(rt.Backends) != 2 || rt.Backends[0].Weight != 50 || rt.Backends[1].Cluster != v2 {
		t.Errorf("backends = %+v, want 50/50 over v1 and v2", rt.Backends)
	}
}

func TestScenarioHeaderCanary(t *testing.T) {
	tbl := mustCompile(t, loadScenario(t, "header-canary", "echo.demo.svc.cluster.local:80"))
	runMatches(t, tbl, []matchCase{
		{"canary", Request{Method: "GET", Path: "/", Header: hdr("X-Canary", "true")}, "HTTPRoute/demo/echo/rule/1/match/0", "outbound|80||echo-v2.demo.svc.cluster.local"},
		{"not canary", Request{Method: "GET", Path: "/x", Header: hdr("X-Canary", "false")}, "HTTPRoute/demo/echo/rule/0/match/0", "outbound|80||echo-v1.demo.svc.cluster.local"},
	})
	rt, _ := tbl.Match(&Request{Path: "/", Header: hdr("X-Canary", "true")})
	h := hdr("X-Debug", "1", "X-Weft-Canary", "no")
	rt.RequestHeaders.Apply(h)
	if got := h.Values("X-Weft-Canary"); len(got) != 1 || got[0] != "yes" || h.Get("X-Debug") != "" {
		t.Errorf("request headers = %v, want X-Weft-Canary: yes and no X-Debug", h)
	}
	resp := hdr("X-Served-By", "app")
	rt.ResponseHeaders.Apply(resp)
	if got := resp.Values("X-Served-By"); len(got) != 2 || got[1] != "canary" {
		t.Errorf("response X-Served-By = %q, want [app canary]", got)
	}
}

func TestScenarioTrafficPolicy(t *testing.T) {
	rt := onlyRoute(t, loadScenario(t, "traffic-policy", "payments.shop.svc.cluster.local:80"))
	if rt.Timeout.String() != "10s" || rt.IdleTimeout.String() != "1m0s" {
		t.Errorf("timeouts = %v, %v, want 10s, 1m0s", rt.Timeout, rt.IdleTimeout)
	}
	if got := rt.RetryPolicy.GetPerTryTimeout().AsDuration().String(); got != "2s" {
		t.Errorf("per-try timeout = %s, want 2s", got)
	}
	if rt.Fault.GetDelay() == nil {
		t.Errorf("fault = %v, want a delay", rt.Fault)
	}
	ledger := onlyRoute(t, loadScenario(t, "traffic-policy", "ledger.shop.svc.cluster.local:9090"))
	if got := ledger.Fault.GetAbort().GetGrpcStatus(); got != 14 {
		t.Errorf("ledger abort grpc_status = %d, want 14", got)
	}
	if ledger.Timeout != 0 || ledger.RetryPolicy != nil {
		t.Errorf("ledger timeout, retry = %v, %v, want 0, nil", ledger.Timeout, ledger.RetryPolicy)
	}
}

func onlyRoute(t *testing.T, rc *routev3.RouteConfiguration) *Route {
	t.Helper()
	rt, ok := mustCompile(t, rc).Match(&Request{Method: "GET", Path: "/anything"})
	if !ok || rt.Name != "default" {
		t.Fatalf("Match = %v, %v, want the default route", rt, ok)
	}
	return rt
}

func TestScenarioMissingBackend(t *testing.T) {
	tbl := mustCompile(t, loadScenario(t, "missing-backend", "echo.demo.svc.cluster.local:80"))
	rt, ok := tbl.Match(&Request{Path: "/none/x"})
	if !ok || rt.DirectStatus != 500 || len(rt.Backends) != 0 {
		t.Fatalf("/none/x: route %+v, want a direct 500", rt)
	}
	if b := rt.PickBackend(7); b != nil {
		t.Errorf("Pick on a direct response = %+v, want zero", b)
	}
	rt, _ = tbl.Match(&Request{Path: "/half"})
	counts := map[string]int{}
	for i := range uint64(1000) {
		counts[rt.Pick(i).Cluster]++
	}
	if got := counts["outbound|80||echo-v1.demo.svc.cluster.local"]; got != 500 {
		t.Errorf("valid backend picked %d of 1000, want 500", got)
	}
	if got := counts["invalid|80||echo-v9.demo.svc.cluster.local"]; got != 300 {
		t.Errorf("echo-v9 picked %d of 1000, want 300", got)
	}
}

func TestScenarioCanarySplit(t *testing.T) {
	tbl := mustCompile(t, loadScenario(t, "canary-split", "echo.demo.svc.cluster.local:80"))
	rt, ok := tbl.Match(&Request{Method: "GET", Path: "/"})
	if !ok {
		t.Fatal("no match")
	}
	counts := map[string]int{}
	for i := range uint64(10000) {
		counts[rt.Pick(i).Cluster]++
	}
	want := map[string]int{"outbound|80||echo-v1.demo.svc.cluster.local": 9000, "outbound|80||echo-v2.demo.svc.cluster.local": 1000}
	for c, n := range want {
		if counts[c] != n {
			t.Errorf("%s picked %d times, want %d", c, counts[c], n)
		}
	}
}
