package translate

import (
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

func prefixMatch(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

// httpRouteMatches converts an HTTPRoute match. A path prefix other than
// "/" becomes two Envoy matches, the exact path and the prefix with a
// trailing "/", because Gateway API prefixes match whole segments ("/api"
// matches "/api" and "/api/x", not "/apix") and the segment-aware
// path_separated_prefix is unknown to gRPC clients.
func httpRouteMatches(m model.RouteMatch) []*routev3.RouteMatch {
	headers := headerMatchers(m.Headers, m.Method)
	query := queryMatchers(m.QueryParams)
	mk := func(path, prefix string, re *matcherv3.RegexMatcher) *routev3.RouteMatch {
		m := &routev3.RouteMatch{Headers: headers, QueryParameters: query}
		switch {
		case re != nil:
			m.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: re}
		case path != "":
			m.PathSpecifier = &routev3.RouteMatch_Path{Path: path}
		default:
			m.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: prefix}
		}
		return m
	}
	p := m.Path
	switch {
	case p == nil:
		return []*routev3.RouteMatch{mk("", "/", nil)}
	case p.Type == model.MatchExact:
		return []*routev3.RouteMatch{mk(p.Value, "", nil)}
	case p.Type == model.MatchRegularExpression:
		return []*routev3.RouteMatch{mk("", "", regex(p.Value))}
	}
	prefix := normalizePrefix(p.Value)
	if prefix == "/" {
		return []*routev3.RouteMatch{mk("", "/", nil)}
	}
	return []*routev3.RouteMatch{mk(prefix, "", nil), mk("", prefix+"/", nil)}
}

// grpcRouteMatch converts a GRPCRoute match into a match on the request
// path, /<service>/<method>.
func grpcRouteMatch(m model.RouteMatch) *routev3.RouteMatch {
	out := &routev3.RouteMatch{Headers: headerMatchers(m.Headers, "")}
	svc, method := m.GRPCService, m.GRPCMethod
	switch {
	case m.GRPCType == model.MatchRegularExpression:
		if svc == "" {
			svc = "[^/]+"
		}
		if method == "" {
			method = "[^/]+"
		}
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("/(?:" + svc + ")/(?:" + method + ")")}
	case svc != "" && method != "":
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: "/" + svc + "/" + method}
	case svc != "":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/" + svc + "/"}
	case method != "":
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("/[^/]+/" + regexp.QuoteMeta(method))}
	default:
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
	return out
}

func regex(re string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: re} }

func stringMatcher(t model.MatchType, v string) *matcherv3.StringMatcher {
	if t == model.MatchRegularExpression {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(v)}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}
}

// uniqueHeaders keeps the first match of each name, as Gateway API says;
// header names compare case-insensitively, query parameter names exactly.
func uniqueHeaders(hs []model.HeaderMatch, foldCase bool) []model.HeaderMatch {
	if len(hs) < 2 {
		return hs
	}
	out := make([]model.HeaderMatch, 0, len(hs))
	seen := make(map[string]bool, len(hs))
	for _, h := range hs {
		k := h.Name
		if foldCase {
			k = strings.ToLower(k)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, h)
		}
	}
	return out
}

// headerMatchers converts header matches (names lower-cased: gRPC clients
// only see lower-case metadata keys) and the method, matched as the
// :method pseudo-header. gRPC requests are always POSTs and their clients
// do not expose :method, so a method match never selects a gRPC call.
func headerMatchers(hs []model.HeaderMatch, method string) []*routev3.HeaderMatcher {
	var out []*routev3.HeaderMatcher
	for _, h := range uniqueHeaders(hs, true) {
		out = append(out, &routev3.HeaderMatcher{
			Name:                 strings.ToLower(h.Name),
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(h.Type, h.Value)},
		})
	}
	if method != "" {
		out = append(out, &routev3.HeaderMatcher{
			Name:                 ":method",
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(model.MatchExact, method)},
		})
	}
	return out
}

// queryMatchers converts query parameter matches. gRPC clients ignore a
// route that has any (they have no query string).
func queryMatchers(qs []model.HeaderMatch) []*routev3.QueryParameterMatcher {
	var out []*routev3.QueryParameterMatcher
	for _, q := range uniqueHeaders(qs, false) {
		out = append(out, &routev3.QueryParameterMatcher{
			Name:                         q.Name,
			QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: stringMatcher(q.Type, q.Value)},
		})
	}
	return out
}
