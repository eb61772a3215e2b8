// Package outlier ejects the endpoints of a cluster that keep failing, on
// the node proxy's L7 path: Envoy's consecutive-errors outlier detection.
// It is pure: no goroutines, no timers, no I/O; the caller reports how
// each request ended, asks Ejected before picking an endpoint (package lb
// takes it as its exclude function), and supplies the clock.
//
// # Detection
//
// Every endpoint has two counters:
//
//   - consecutive 5xx: a 5xx response, a connect failure, a reset or a
//     timeout before the response (Report's gatewayFailure) adds one;
//   - consecutive gateway failures: a 502, 503, 504 or a gatewayFailure
//     adds one; another 5xx sets it to 0.
//
// A status below 500 sets both to 0. When a counter reaches its threshold
// the endpoint is ejected, at once (not at the next interval), and the
// counter restarts from 0 whether or not the ejection happened.
//
// An ejection lasts base_ejection_time × k, capped at
// max(base_ejection_time, max_ejection_time), k being a multiplier that
// each ejection raises by one and that falls by one for each interval tick
// the endpoint spends healthy at least base_ejection_time after its last
// ejection ended (Envoy's backoff). So an endpoint ejected again soon is
// ejected for twice as long, then three times; one that recovered is
// ejected for base_ejection_time again. The ejection ends exactly when its
// time is up, checked lazily by Ejected (Envoy waits for the next interval
// tick, up to one interval later).
//
// An ejection that would put more than max_ejection_percent of the
// endpoints in ejection at once does not happen, as in Envoy: with three
// endpoints and 30%, none is ever ejected (one is 33%), unless
// always_eject_one_host is set.
//
// # Config
//
// New takes the Cluster's outlier_detection as translate emits it:
// consecutive_5xx with enforcing_consecutive_5xx (100, or 0 to turn it
// off), consecutive_gateway_failure with
// enforcing_consecutive_gateway_failure, interval, base_ejection_time,
// max_ejection_percent and enforcing_success_rate: 0. Absent fields take
// Envoy's defaults: thresholds 5, consecutive_5xx enforced and gateway
// failures not, interval 10 s, base_ejection_time 30 s, max_ejection_time
// 300 s, max_ejection_percent 10. max_ejection_time and
// always_eject_one_host are honoured too.
//
// New rejects, with an error wrapping ErrUnsupported, what Weft does not
// implement: success-rate ejection (Envoy enables it when
// enforcing_success_rate is absent, so it must be an explicit 0),
// failure-percentage ejection, split_external_local_origin_errors,
// max_ejection_time_jitter, detect_degraded_hosts, monitors, and
// enforcing_* values other than 0 and 100 (a probabilistic enforcement
// would need a random source; Weft emits only 0 and 100).
//
// # Endpoints and concurrency
//
// SetEndpoints replaces the endpoint list on an EDS update; endpoints are
// keyed by address ("ip:port"), and one kept across updates keeps its
// counters and ejection. Reports for unknown addresses are ignored, and
// unknown addresses are never ejected. max_ejection_percent counts the
// current endpoints; removing endpoints does not end ejections.
//
// All methods are safe for concurrent use. Ejected and Report are
// lock-free and do not allocate; an ejection decision and SetEndpoints
// take a mutex. Ejected reads the clock only for an endpoint that has
// been ejected at some point.
//
// # Metrics
//
// None here. Stats gives the proxy what it exports per cluster:
// weft_proxy_outlier_ejections_total (counter, Stats.EjectionsTotal) and
// weft_proxy_outlier_ejected (gauge, Stats.Ejected), read at scrape time.
//
// # Example
//
//	d, err := outlier.New(cluster.GetOutlierDetection(), time.Now) // on CDS update
//	if err != nil {
//		return fmt.Errorf("cluster %s: %w", cluster.GetName(), err)
//	}
//	d.SetEndpoints(addrs) // on EDS update
//	i, ok := picker.Pick(func(i int) bool { return d.Ejected(addrs[i]) })
//	if !ok {
//		return errNoHealthyUpstream
//	}
//	resp, err := send(addrs[i])
//	if err != nil {
//		d.Report(addrs[i], 0, isConnectFailureOrReset(err))
//	} else {
//		d.Report(addrs[i], resp.StatusCode, false)
//	}
package outlier
