package identity

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the identity service.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the identity metrics with reg:
//
//	weft_identity_requests_total{rpc, result}   result is "ok" or a refusal reason
//	weft_identity_request_duration_seconds{rpc}
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_identity_requests_total",
			Help: "Identity API requests by RPC and result: ok, or the reason for the refusal.",
		}, []string{"rpc", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_identity_request_duration_seconds",
			Help:    "Time to answer identity API requests (authentication, lookup and signing).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"rpc"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *Metrics) observe(rpc, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(rpc, result).Inc()
	m.latency.WithLabelValues(rpc).Observe(d.Seconds())
}
