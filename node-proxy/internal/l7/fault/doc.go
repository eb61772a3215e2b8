// Package fault injects the faults of a route's fault configuration on the
// node proxy's L7 path: a fixed delay and an abort, each for a percentage
// of requests. It is pure: Compile checks the configuration once, and
// Decide draws per request from a random source the caller supplies; the
// caller sleeps, answers and counts.
//
// # Config
//
// The input is the envoy.filters.http.fault HTTPFault that translate puts
// in a route's typed_per_filter_config (from TrafficPolicy faults):
//
//   - delay.fixed_delay with delay.percentage;
//   - abort.http_status (200-599) or abort.grpc_status, with
//     abort.percentage.
//
// Percentages are FractionalPercent with a HUNDRED, TEN_THOUSAND or
// MILLION denominator; absent means never, a numerator above the
// denominator means always. As in Envoy, the delay and the abort are
// drawn independently (rnd()%denominator < numerator, one draw each), so
// a request can be delayed and then aborted; the abort happens after the
// delay. A zero delay is not injected.
//
// A gRPC abort answers a gRPC request trailers-only with grpc-status
// Decision.GRPCStatus (HTTP 200 on the wire); Decision.HTTPStatus is then
// 503, what Envoy sends to a request that is not gRPC.
//
// Compile rejects, with an error wrapping ErrUnsupported, what Weft never
// emits: header_delay, header_abort, headers, upstream_cluster,
// downstream_nodes, max_active_faults, response_rate_limit and
// filter_metadata. The *_runtime key names are ignored: the proxy has no
// runtime layer. max_active_faults is not needed because translate does
// not set it (Envoy's default is unlimited).
//
// # Metrics
//
// None here. The proxy exports weft_proxy_faults_injected_total{kind},
// kind being "delay" or "abort", incremented once per request for each
// fault in the Decision.
//
// # Example
//
//	f, err := fault.Compile(hf) // per route, when RDS changes
//	if err != nil {
//		return fmt.Errorf("route %s: %w", name, err)
//	}
//	d := f.Decide(rand.Uint64) // per request; nil f injects nothing
//	if d.Delay > 0 {
//		faultsInjected.WithLabelValues("delay").Inc()
//		sleep(ctx, d.Delay)
//	}
//	if d.Abort {
//		faultsInjected.WithLabelValues("abort").Inc()
//		return localReply(d.HTTPStatus, d.GRPCStatus, d.HasGRPC)
//	}
package fault
