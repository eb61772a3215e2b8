package convert

import (
	"testing"
	"time"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

func TestHTTPRoute(t *testing.T) {
	prefix := func(v string) *model.StringMatch { return &model.StringMatch{Type: model.MatchPathPrefix, Value: v} }
	for _, tc := range []struct {
		name string
		in   string
		want *model.Route
	}{
		{
			name: "every field",
			in: `
metadata: {name: cart, namespace: shop, uid: r1, generation: 3}
spec:
  parentRefs:
  - {group: "", kind: Service, name: cart, port: 80}
  - {group: core, kind: Service, name: cart, namespace: other, sectionName: http}
  - {name: gw}
  hostnames: [cart.shop]
  rules:
  - name: canary
    matches:
    - path: {type: Exact, value: /checkout}
      headers: [{name: x-user, value: beta}, {name: x-re, type: RegularExpression, value: "a.*"}]
      queryParams: [{name: q, value: "1"}]
      method: POST
    - headers: [{name: x-any, value: "1"}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: "1"}], add: [{name: x-b, value: "2"}], remove: [x-c]}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-d, value: "3"}]}
    - type: URLRewrite
      urlRewrite: {hostname: foo}
    backendRefs:
    - {name: cart-v1, port: 8080, weight: 90}
    - name: cart-v2
      namespace: canary
      port: 8080
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: m, port: 1}}}]
    - {group: example.com, kind: Bucket, name: b}
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {attempts: 3, backoff: 100ms, codes: [500, 503]}
  - matches: [{path: {type: RegularExpression, value: "/v[0-9]+/.*"}}]
    backendRefs: [{name: cart-v1, port: 8080}]
    timeouts: {request: "0s"}
    retry: {}
`,
			want: &model.Route{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "cart", UID: "r1", Generation: 3},
				Kind:       model.HTTPRoute,
				Parents: []model.ParentRef{
					{Index: 0, Group: "", Kind: "Service", Namespace: "shop", Name: "cart", Port: 80},
					{Index: 1, Group: "core", Kind: "Service", Namespace: "other", Name: "cart", SectionName: "http"},
					{Index: 2, Group: "gateway.networking.k8s.io", Kind: "Gateway", Namespace: "shop", Name: "gw"},
				},
				Hostnames: []string{"cart.shop"},
				Rules: []model.RouteRule{
					{
						Name: "canary",
						Matches: []model.RouteMatch{
							{
								Path: &model.StringMatch{Type: model.MatchExact, Value: "/checkout"},
								Headers: []model.HeaderMatch{
									{Name: "x-user", Type: model.MatchExact, Value: "beta"},
									{Name: "x-re", Type: model.MatchRegularExpression, Value: "a.*"},
								},
								QueryParams: []model.HeaderMatch{{Name: "q", Type: model.MatchExact, Value: "1"}},
								Method:      "POST",
							},
							{Path: prefix("/"), Headers: []model.HeaderMatch{{Name: "x-any", Type: model.MatchExact, Value: "1"}}},
						},
						RequestHeaders: &model.HeaderModifier{Set: []model.Header{{Name: "x-a", Value: "1"}},
							Add: []model.Header{{Name: "x-b", Value: "2"}}, Remove: []string{"x-c"}},
						ResponseHeaders:    &model.HeaderModifier{Set: []model.Header{{Name: "x-d", Value: "3"}}},
						Rewrite:            &model.RouteRewrite{Hostname: "foo"},
						UnsupportedFilters: []string{"backendRef RequestMirror"},
						Backends: []model.Backend{
							{Kind: "Service", Namespace: "shop", Name: "cart-v1", Port: 8080, Weight: 90},
							{Kind: "Service", Namespace: "canary", Name: "cart-v2", Port: 8080, Weight: 1},
							{Group: "example.com", Kind: "Bucket", Namespace: "shop", Name: "b", Weight: 1},
						},
						Timeouts: &model.RouteTimeouts{Request: 10 * time.Second, BackendRequest: 2 * time.Second},
						Retry:    &model.RouteRetry{Attempts: 3, Backoff: 100 * time.Millisecond, Codes: []int32{500, 503}},
					},
					{
						Matches:  []model.RouteMatch{{Path: &model.StringMatch{Type: model.MatchRegularExpression, Value: "/v[0-9]+/.*"}}},
						Backends: []model.Backend{{Kind: "Service", Namespace: "shop", Name: "cart-v1", Port: 8080, Weight: 1}},
						Timeouts: &model.RouteTimeouts{},
						Retry:    &model.RouteRetry{},
					},
				},
			},
		},
		{
			name: "no rules gets the schema default rule",
			in:   `{metadata: {name: r, namespace: shop}, spec: {parentRefs: [{group: "", kind: Service, name: cart}]}}`,
			want: &model.Route{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "r"},
				Kind:       model.HTTPRoute,
				Parents:    []model.ParentRef{{Group: "", Kind: "Service", Namespace: "shop", Name: "cart"}},
				Rules:      []model.RouteRule{{Matches: []model.RouteMatch{{Path: prefix("/")}}}},
			},
		},
		{
			name: "redirect",
			in: `
metadata: {name: r, namespace: shop}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: example.org, port: 8443, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /x}}}]
`,
			want: &model.Route{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "r"},
				Kind:       model.HTTPRoute,
				Rules: []model.RouteRule{
					{Matches: []model.RouteMatch{{Path: prefix("/old")}}, Redirect: &model.RouteRedirect{Scheme: "https", Hostname: "example.org",
						Port: 8443, StatusCode: 301, ReplacePrefixMatch: ptrTo("/new")}},
					{Matches: []model.RouteMatch{{Path: prefix("/")}}, Redirect: &model.RouteRedirect{StatusCode: 302, ReplaceFullPath: ptrTo("/x")}},
				},
			},
		},
		{
			name: "backendRef header filters, URL rewrite",
			in: `
metadata: {name: r, namespace: shop}
spec:
  rules:
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /x}}}]
    backendRefs:
    - name: a
      port: 1
      filters:
      - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-b, value: a}]}}
      - {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x-c]}}
`,
			want: &model.Route{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "r"},
				Kind:       model.HTTPRoute,
				Rules: []model.RouteRule{{
					Matches: []model.RouteMatch{{Path: prefix("/")}},
					Rewrite: &model.RouteRewrite{ReplaceFullPath: ptrTo("/x")},
					Backends: []model.Backend{{Kind: "Service", Namespace: "shop", Name: "a", Port: 1, Weight: 1,
						RequestHeaders:  &model.HeaderModifier{Set: []model.Header{{Name: "x-b", Value: "a"}}},
						ResponseHeaders: &model.HeaderModifier{Remove: []string{"x-c"}}}},
				}},
			},
		},
		{
			name: "path with type or value only, weight 0",
			in: `
metadata: {name: r, namespace: shop}
spec:
  rules:
  - matches: [{path: {value: /api}}, {path: {type: Exact}}]
    backendRefs: [{name: a, port: 1, weight: 0}]
`,
			want: &model.Route{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "r"},
				Kind:       model.HTTPRoute,
				Rules: []model.RouteRule{{
					Matches:  []model.RouteMatch{{Path: prefix("/api")}, {Path: &model.StringMatch{Type: model.MatchExact, Value: "/"}}},
					Backends: []model.Backend{{Kind: "Service", Namespace: "shop", Name: "a", Port: 1, Weight: 0}},
				}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := HTTPRoute(decode[gwapiv1.HTTPRoute](t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(got, tc.want); d != "" {
				t.Errorf("HTTPRoute (-want +got):\n%s", d)
			}
		})
	}
}

func TestHTTPRouteInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		want []string
	}{
		{"bad durations", `{rules: [{timeouts: {request: 10x, backendRequest: 1.5s}, retry: {backoff: 1d}}]}`, []string{
			`spec.rules[0].timeouts.request: invalid duration "10x"`,
			`spec.rules[0].timeouts.backendRequest: invalid duration "1.5s"`,
			`spec.rules[0].retry.backoff: invalid duration "1d"`}},
		{"backendRequest longer than request", `{rules: [{timeouts: {request: 1s, backendRequest: 2s}}]}`, []string{
			"spec.rules[0].timeouts: backendRequest timeout cannot be longer than request timeout"}},
		{"retry out of range", `{rules: [{retry: {attempts: 0, codes: [200, 600]}}]}`, []string{
			"spec.rules[0].retry.attempts: 0 is out of range", "spec.rules[0].retry.codes[0]: 200 is out of range, want 400 to 599",
			"spec.rules[0].retry.codes[1]: 600"}},
		{"matches", `{rules: [{matches: [{path: {type: Prefix, value: /}}, {path: {value: api}}, {headers: [{name: "", value: x, type: Regex}], method: FETCH}]}]}`, []string{
			`spec.rules[0].matches[0].path.type: "Prefix" is not one of Exact, PathPrefix, RegularExpression`,
			`spec.rules[0].matches[1].path.value: "api" must be an absolute path`,
			`spec.rules[0].matches[2].headers[0].type: "Regex" is not one of Exact, RegularExpression`,
			"spec.rules[0].matches[2].headers[0].name: required",
			`spec.rules[0].matches[2].method: "FETCH" is not one of GET`}},
		{"filters", `{rules: [{filters: [{type: RequestHeaderModifier}, {type: ResponseHeaderModifier, responseHeaderModifier: {}}, {type: ResponseHeaderModifier, responseHeaderModifier: {}}, {}]}]}`, []string{
			"spec.rules[0].filters[0].requestHeaderModifier: required when type is RequestHeaderModifier",
			"spec.rules[0].filters[2].type: ResponseHeaderModifier filter cannot be repeated",
			"spec.rules[0].filters[3].type: required"}},
		{"redirect", `{rules: [{matches: [{path: {type: Exact, value: /a}}], filters: [{type: RequestRedirect, requestRedirect: {scheme: ftp, statusCode: 304, path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}, {type: RequestRedirect, requestRedirect: {}}]}, {filters: [{type: RequestRedirect}]}]}`, []string{
			`spec.rules[0].filters[0].requestRedirect.scheme: "ftp" is not one of http, https`,
			"spec.rules[0].filters[0].requestRedirect.statusCode: 304 is not one of 301, 302, 303, 307, 308",
			"spec.rules[0].filters[0].requestRedirect.path: ReplacePrefixMatch needs every match of the rule to have a PathPrefix path",
			"spec.rules[0].filters[1].type: RequestRedirect filter cannot be repeated",
			"spec.rules[1].filters[0].requestRedirect: required when type is RequestRedirect"}},
		{"refs", `{parentRefs: [{name: "", port: 0}], rules: [{backendRefs: [{name: a}, {name: b, port: 1, weight: 1000001}]}]}`, []string{
			"spec.parentRefs[0].port: 0 is out of range", "spec.parentRefs[0].name: required",
			"spec.rules[0].backendRefs[0].port: required for a Service backend",
			"spec.rules[0].backendRefs[1].weight: 1000001 is out of range, want 0 to 1000000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := HTTPRoute(decode[gwapiv1.HTTPRoute](t, `{metadata: {name: bad, namespace: shop}, spec: `+tc.spec+`}`))
			wantInvalid(t, err, append([]string{"HTTPRoute shop/bad: "}, tc.want...)...)
		})
	}
}

func TestGRPCRoute(t *testing.T) {
	got, err := GRPCRoute(decode[gwapiv1.GRPCRoute](t, `
metadata: {name: g, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: cart, port: 9090}]
  rules:
  - matches:
    - method: {service: shop.Cart, method: Get}
      headers: [{name: x-user, value: beta}]
    - method: {type: RegularExpression, service: "shop\\..*"}
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [x-debug]}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: m, port: 1}}}
    backendRefs: [{name: cart-v1, port: 9090, weight: 3}]
  - backendRefs: [{name: cart-v2, port: 9090}]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &model.Route{
		ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "g"},
		Kind:       model.GRPCRoute,
		Parents:    []model.ParentRef{{Kind: "Service", Namespace: "shop", Name: "cart", Port: 9090}},
		Rules: []model.RouteRule{
			{
				Matches: []model.RouteMatch{
					{GRPCType: model.MatchExact, GRPCService: "shop.Cart", GRPCMethod: "Get",
						Headers: []model.HeaderMatch{{Name: "x-user", Type: model.MatchExact, Value: "beta"}}},
					{GRPCType: model.MatchRegularExpression, GRPCService: `shop\..*`},
				},
				RequestHeaders:     &model.HeaderModifier{Remove: []string{"x-debug"}},
				UnsupportedFilters: []string{"RequestMirror"},
				Backends:           []model.Backend{{Kind: "Service", Namespace: "shop", Name: "cart-v1", Port: 9090, Weight: 3}},
			},
			{Backends: []model.Backend{{Kind: "Service", Namespace: "shop", Name: "cart-v2", Port: 9090, Weight: 1}}},
		},
	}
	if d := diff(got, want); d != "" {
		t.Errorf("GRPCRoute (-want +got):\n%s", d)
	}

	_, err = GRPCRoute(decode[gwapiv1.GRPCRoute](t, `
metadata: {name: bad, namespace: shop}
spec:
  rules:
  - matches: [{method: {}}, {method: {type: Prefix, service: a}}]
    backendRefs: [{name: a}]
`))
	wantInvalid(t, err, "GRPCRoute shop/bad: ", "spec.rules[0].matches[0].method: one or both of service or method must be specified",
		`spec.rules[0].matches[1].method.type: "Prefix" is not one of Exact, RegularExpression`,
		"spec.rules[0].backendRefs[0].port: required")
}

func ptrTo[T any](v T) *T { return &v }
