// Package lb chooses the endpoint for each request on the node proxy's L7
// path. It is pure: no I/O, no goroutines, no metrics of its own; the caller
// supplies the endpoint list (from EDS), the clock and the random source,
// and reports how each request ended.
//
// # Pickers
//
//   - RoundRobin: endpoints in turn; an excluded endpoint's turn goes to the
//     next one that is not excluded. No per-endpoint state.
//   - LeastRequest: power of two choices (P2C) on outstanding requests: draw
//     Config.Choices random endpoints (the first two distinct), take the one with the fewest
//     requests in flight (Envoy's LEAST_REQUEST with equal weights).
//   - PeakEWMA: P2C on cost = latency estimate × (outstanding+1), as in
//     Finagle and Linkerd. Weft's default (xdsv1.PeakEwmaLoadBalancer).
//
// # Peak EWMA
//
// The latency estimate is a peak-sensitive EWMA of observed latencies:
//
//   - an observation above the estimate replaces it at once (peak), so a
//     spike moves traffic away on the next pick;
//   - one below it is averaged in with weight 1-exp(-elapsed/Decay),
//     elapsed being the time since the previous observation;
//   - when picking, the estimate is read decayed by exp(-idle/Decay), so an
//     endpoint that stopped getting traffic after a spike becomes cheap
//     again and is probed, instead of being avoided forever;
//   - an endpoint with no observation yet costs 0 while it has nothing in
//     flight and a large penalty (about 39 h) otherwise: a new endpoint gets
//     one request at a time until its first answer.
//
// # Use
//
// Pick counts the request as started on the chosen endpoint; the caller must
// call Done(i, rtt) exactly once for every successful Pick, on the same
// Picker, with the time to response headers (or to failure). A negative rtt
// ends the request without recording a latency (the client went away).
// exclude lets outlier detection and retries skip endpoints (ejected, or
// already tried); nil excludes nothing. Pick returns ok=false when every
// endpoint is excluded or there are none.
//
// Errors are not penalised here: a fast-failing endpoint looks fast, and
// outlier detection (package outlier) is what ejects it.
//
// When EDS changes the endpoint list, Rebuild returns a picker of the same
// kind for the new list. Endpoints are keyed by address ("ip:port"); an
// endpoint kept across the rebuild keeps its state object, so its latency
// estimate and outstanding count survive a reorder or a weight change, and
// requests still in flight on the old picker update the new one when their
// Done arrives. Weights are not used (all endpoints are equal).
//
// All methods are safe for concurrent use. Pick is lock-free and does not
// allocate; PeakEWMA.Done takes a per-endpoint mutex.
//
// # Config
//
// Config.Choices is PeakEwmaLoadBalancer.choice_count (0 means 2) and
// Config.Decay is PeakEwmaLoadBalancer.decay (0 means 10 s). Config.Now and
// Config.Rand default to time.Now and math/rand/v2.IntN; tests inject a fake
// clock and a seeded source.
//
// # Metrics
//
// None here. The caller counts requests per endpoint; Stats reports an
// endpoint's outstanding requests and current latency estimate for
// debugging (weftctl) and gauges.
//
// # Example
//
//	p := lb.NewPeakEWMA([]string{"10.0.0.1:80", "10.0.0.2:80"}, lb.Config{})
//	i, ok := p.Pick(nil)
//	if !ok {
//		return errNoHealthyUpstream
//	}
//	start := time.Now()
//	resp, err := send(endpoints[i])
//	p.Done(i, time.Since(start))
//	// EDS update:
//	p = p.Rebuild([]string{"10.0.0.2:80", "10.0.0.3:80"}) // 10.0.0.2 keeps its estimate
package lb
