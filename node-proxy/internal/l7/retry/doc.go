// Package retry decides whether, when and how often the node proxy
// retries an L7 request. It is pure: no I/O, no goroutines, an injected
// clock and random source. The proxy's HTTP path does the sending.
//
// # What it does
//
// For each request on a route with a retry policy the proxy:
//
//  1. buffers the body with ReplayableBody, up to MaxReplayBody (64 KiB);
//     a larger body gets one attempt and no retries;
//  2. calls Budget.Request once (a deposit) for the first attempt;
//  3. after a failed attempt asks Policy.Retriable whether the outcome
//     (HTTP status, grpc-status, reset before the response, connect
//     failure) is retried, checks that fewer than Policy.Attempts retries
//     were made, and calls Budget.TryRetry (a withdrawal);
//  4. waits Policy.Backoff(n, nil) (exponential, full jitter) before
//     retry n, bounding each attempt by Policy.PerTryTimeout.
//
// The Budget keeps retries from amplifying an outage: over a sliding
// Window (10 s, in one-second buckets) retries are at most Percent% of
// the requests plus MinPerSecond × 10. With every request failing and
// three attempts configured, 1,000 requests per second and the default
// budget give at most 200 + 10 retries per second instead of 3,000.
// Retries never deposit. One Budget exists per upstream cluster.
//
// # Config
//
// Policy comes from the route's envoy.config.route.v3.RetryPolicy, as
// control-plane/internal/translate emits it:
//
//   - num_retries: Policy.Attempts, retries after the first try (unset: 1).
//   - per_try_timeout: Policy.PerTryTimeout (unset: only the route timeout).
//   - retry_on: comma-separated conditions: 5xx, gateway-error, reset,
//     connect-failure, retriable-status-codes for HTTP; cancelled,
//     deadline-exceeded, resource-exhausted, internal, unavailable for
//     gRPC status codes. Unknown tokens are an error. The default
//     translate emits is "5xx,gateway-error,reset,connect-failure,unavailable".
//   - retriable_status_codes: statuses (100-599) for retriable-status-codes.
//   - retry_back_off: base_interval (unset: 25 ms) and max_interval
//     (unset: 10 × base).
//
// Envoy fields translate never sets (retry_host_predicate,
// retriable_headers, ...) are rejected, not ignored.
//
// BudgetConfig comes from the cluster's weft.xds.v1.ClusterMetadata
// retry_budget: percent (default 20) and min_retries_per_second (default
// 10).
//
// # Metrics
//
// The package exports nothing itself; the proxy counts its decisions:
//
//	weft_proxy_retries_total{result}            counter; result is "success" (the
//	                                            retry got a non-retriable outcome)
//	                                            or "failure" (it failed again)
//	weft_proxy_retry_budget_exhausted_total     counter; retries denied by TryRetry
//
// # Example
//
//	pol, err := retry.NewPolicy(route.GetRoute().GetRetryPolicy())
//	if err != nil { ... reject the route ... }
//	budget := retry.NewBudget(retry.BudgetConfig{Percent: 20, MinPerSecond: 10})
//
//	buf, fit, err := retry.ReplayableBody(req.Body, retry.MaxReplayBody)
//	budget.Request()
//	for n := 0; ; n++ {
//		res, err := send(bytes.NewReader(buf))
//		if !fit || n == pol.Attempts || !pol.Retriable(res.status, res.grpc, res.reset, res.connectFailed) {
//			return res, err
//		}
//		if !budget.TryRetry() {
//			budgetExhausted.Inc()
//			return res, err
//		}
//		sleep(ctx, pol.Backoff(n+1, nil))
//	}
package retry
