package xds

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the xDS server; see the package doc for what each means.
type metrics struct {
	clients      *prometheus.GaugeVec
	pushes       *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	rejected     *prometheus.CounterVec
	inconsistent prometheus.Counter
	buildErrors  prometheus.Counter
}

// Values of the "protocol" and "trigger" labels.
const (
	protocolSotW  = "sotw"
	protocolDelta = "delta"

	triggerChange  = "change"  // the model changed
	triggerConnect = "connect" // a node connected
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_xds_clients",
			Help: "Accepted xDS streams open now, by protocol (sotw, delta).",
		}, []string{"protocol"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_pushes_total",
			Help: "xDS responses sent to clients, by resource type (type URL without type.googleapis.com/).",
		}, []string{"type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_xds_push_latency_seconds",
			Help: "Time from a model change (trigger=change) or a node's connection (trigger=connect) to the node's new snapshot being set.",
			// 1ms .. ~16s; the debounce window alone is 100ms by default.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"trigger"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_rejected_streams_total",
			Help: "xDS streams refused, by reason.",
		}, []string{"reason"}),
		inconsistent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_inconsistent_snapshots_total",
			Help: "Node snapshots refused because a reference did not resolve or a resource was invalid; the previous snapshot stayed.",
		}),
		buildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_build_errors_total",
			Help: "Node snapshots the builder failed to produce; the previous snapshot stayed.",
		}),
	}
	for _, p := range []string{protocolSotW, protocolDelta} {
		m.clients.WithLabelValues(p)
	}
	if reg != nil {
		reg.MustRegister(m.clients, m.pushes, m.latency, m.rejected, m.inconsistent, m.buildErrors)
	}
	return m
}

// typeLabel shortens a type URL for the "type" label.
func typeLabel(typeURL string) string { return strings.TrimPrefix(typeURL, typePrefix) }
