// Package route compiles an Envoy RouteConfiguration, as
// control-plane/internal/translate emits it for a Service port, into a
// Table the node proxy's L7 path matches each request against. It is pure:
// no I/O, no goroutines, no metrics; the proxy compiles a Table on each
// RDS update and swaps it in. A Table is immutable and safe for concurrent
// use.
//
// # Matching
//
// Envoy's semantics: the virtual host is chosen by Host (exact domain,
// case-insensitive, port included as written; else the "*" host; translate
// emits one virtual host ending in "*", which skips the lookup), then the
// first route, in configured order, whose match holds wins. translate has
// already ordered the routes by Gateway API precedence. No match returns
// false: routes are attached and none matched, so the proxy answers 404
// (gRPC: UNAVAILABLE), as Gateway API requires.
//
// Supported, per route match:
//
//   - path: prefix, path (exact), path_separated_prefix, safe_regex (Go's
//     RE2, matching the whole path); case_sensitive false. translate
//     encodes a Gateway API PathPrefix "/api" as path "/api" plus prefix
//     "/api/", and a GRPCRoute as path "/pkg.Service/Method", prefix
//     "/pkg.Service/" or a safe_regex, so prefix and exact cover both.
//     The path is matched as given (no decoding, no normalization).
//   - headers: string_match (exact, prefix, suffix, contains, safe_regex;
//     ignore_case), present_match, invert_match,
//     treat_missing_header_as_empty; several values of a header are joined
//     with ",". Pseudo-headers :method (translate's method match),
//     :authority (also "host") and :path (path and query).
//   - query_parameters: string_match and present_match on the first
//     parameter of the name, percent-decoded.
//
// And per route: cluster or weighted_clusters (Route.Backends, chosen with
// Route.Pick), direct_response (Route.DirectStatus, translate's 500 when no
// backend resolves), timeout (unset: Envoy's 15 s), idle_timeout,
// retry_policy (kept raw for package retry), request and response header
// changes (HeaderMods, applied with Apply) and the fault filter's
// typed_per_filter_config (Route.Fault, kept raw).
//
// # Unsupported
//
// Anything else is a Compile error naming the route configuration,
// virtual host and route, never silently ignored: fields translate never
// sets (redirects, rewrites, cluster_header, hash policies, mirrors,
// runtime fractions, the grpc and connect matchers, header range matches,
// virtual-host-level settings, other per-filter configs), regular
// expressions Go cannot compile, wildcard domains other than "*", a
// duplicate domain, changes to pseudo-headers or Host. Header values are
// literal: Envoy's %VAR% substitution is not done.
//
// # Cost
//
// Matching is a linear scan of the routes: about 13 ns for a first-route
// hit and 120-200 ns for a last-route hit or a miss over 20 routes with
// header, query and regex matches, with no allocation (see
// BenchmarkMatch). Pick is a walk (up to 8 backends) or a binary search of
// cumulative weights, without allocation.
//
// # Example
//
//	tbl, err := route.Compile(rc) // from RDS
//	if err != nil {
//		return fmt.Errorf("rds %s: %w", rc.GetName(), err) // keep the previous table
//	}
//	req := route.FromHTTP(r)
//	rt, ok := tbl.Match(&req)
//	if !ok {
//		http.Error(w, "no matching route", http.StatusNotFound)
//		return
//	}
//	if rt.DirectStatus != 0 {
//		w.WriteHeader(rt.DirectStatus)
//		return
//	}
//	rt.RequestHeaders.Apply(r.Header)
//	backend := rt.Pick(rand.Uint64()) // backend.Cluster names the EDS cluster
package route
