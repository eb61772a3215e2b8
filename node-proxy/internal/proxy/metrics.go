package proxy

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's own series on 15020, beside weft_tunnel_*
// (HBONE connections, streams, handshake failures), weft_xds_client_* and
// the Go runtime's.
type metrics struct {
	// connections counts carried and refused connections by direction
	// (outbound: opened by an enrolled pod; inbound: arriving at one),
	// result (tunnel, direct, passthrough, plaintext, refused) and the
	// refusal reason.
	connections *prometheus.CounterVec
	// bytes counts bytes carried, by direction and flow (upstream: from
	// the connection's client to its server; downstream: back).
	bytes *prometheus.CounterVec
	// denials counts connections refused by authorization, by reason
	// (policy, plaintext, unknown_workload).
	denials *prometheus.CounterVec
	// requests counts HTTP requests by direction, status code and, for
	// answers the proxy made itself, the reason.
	requests *prometheus.CounterVec
	// retries counts retry decisions: retried, or budget_exhausted when
	// the retry budget refused one.
	retries *prometheus.CounterVec
	// faults counts injected faults by kind (delay, abort).
	faults *prometheus.CounterVec

	// codes caches the requests counters of proxied (not local)
	// responses by direction and status, off the per-request path.
	codes [2][600]atomic.Pointer[prometheus.Counter]
}

// proxied counts a proxied response with status on direction (0:
// outbound, 1: inbound).
func (m *metrics) proxied(direction, status int) {
	if status < 100 || status >= 600 {
		m.requests.WithLabelValues([]string{"outbound", "inbound"}[direction], strconv.Itoa(status), "").Inc()
		return
	}
	slot := &m.codes[direction][status]
	if c := slot.Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.requests.WithLabelValues([]string{"outbound", "inbound"}[direction], strconv.Itoa(status), "")
	slot.Store(&c)
	c.Inc()
}

func newMetrics(reg prometheus.Registerer, p *Proxy) (*metrics, error) {
	m := &metrics{
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_proxy_connections_total",
			Help: "TCP connections handled, by direction, result and refusal reason.",
		}, []string{"direction", "result", "reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_proxy_bytes_total",
			Help: "Bytes carried for pods, by direction and flow (upstream: client to server).",
		}, []string{"direction", "flow"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_proxy_authorization_denials_total",
			Help: "Connections refused by authorization, by reason.",
		}, []string{"reason"}),
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_proxy_requests_total",
		Help: "HTTP requests handled, by direction, response code and, for local replies, the reason.",
	}, []string{"direction", "code", "reason"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_proxy_retries_total",
		Help: "Retry decisions: retried, or budget_exhausted when the retry budget refused a retry.",
	}, []string{"result"})
	m.faults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_proxy_faults_injected_total",
		Help: "Faults injected by TrafficPolicy, by kind (delay, abort).",
	}, []string{"kind"})
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_proxy_ready",
		Help: "1 when the node proxy has its node certificate, its configuration and every pod's certificate.",
	}, func() float64 {
		if p.Ready() == nil {
			return 1
		}
		return 0
	})
	pods := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_proxy_enrolled_pods",
		Help: "Pods enrolled on this node.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.pods))
	})
	for _, c := range []prometheus.Collector{m.connections, m.bytes, m.denials, m.requests, m.retries, m.faults, ready, pods, newCertCollector(p)} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) refuse(direction, reason string) {
	m.connections.WithLabelValues(direction, resultRefused, reason).Inc()
}

func (m *metrics) addBytes(direction string, upstream, downstream int64) {
	m.bytes.WithLabelValues(direction, "upstream").Add(float64(upstream))
	m.bytes.WithLabelValues(direction, "downstream").Add(float64(downstream))
}

// certCollector reports the expiry of every certificate the node holds.
type certCollector struct {
	p    *Proxy
	desc *prometheus.Desc
}

func newCertCollector(p *Proxy) *certCollector {
	return &certCollector{p: p, desc: prometheus.NewDesc("weft_proxy_certificate_expiry_seconds",
		"Expiry of each certificate the node proxy holds, as a Unix time.", []string{"spiffe_id", "pod"}, nil)}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.p.mgr.Statuses() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.NotAfter.Unix()), s.ID, s.Pod)
	}
}
