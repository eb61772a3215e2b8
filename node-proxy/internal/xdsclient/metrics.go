package xdsclient

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the "result" label.
const (
	resultACK  = "ack"
	resultNACK = "nack"
)

// metrics of the client; see the package doc for what each means.
type metrics struct {
	connected  prometheus.Gauge
	updates    *prometheus.CounterVec
	reconnects prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, types []string) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_xds_client_connected",
			Help: "1 while the ADS stream to the control plane is up (a response was received on it), else 0.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_xds_client_updates_total",
			Help: "xDS responses received, by resource type (type URL without type.googleapis.com/) and result (ack, nack).",
		}, []string{"type", "result"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_xds_client_reconnects_total",
			Help: "ADS streams opened after the first one.",
		}),
	}
	for _, t := range types {
		m.updates.WithLabelValues(typeLabel(t), resultACK)
		m.updates.WithLabelValues(typeLabel(t), resultNACK)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connected, m.updates, m.reconnects} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("xdsclient: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// typeLabel shortens a type URL for the "type" label and messages.
func typeLabel(typeURL string) string { return strings.TrimPrefix(typeURL, typePrefix) }
