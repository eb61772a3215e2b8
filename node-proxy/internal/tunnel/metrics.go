package tunnel

import (
	"errors"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Refusal reasons, the reason label of weft_tunnel_refusals_total on the
// server side. See the package documentation for the status of each.
const (
	reasonBadRequest      = "bad_request"
	reasonHeadersTooLarge = "headers_too_large"
	reasonStreamLimit     = "stream_limit"
	reasonNotLocal        = "authority_not_local"
	reasonUnauthenticated = "unauthenticated"
	reasonForbidden       = "forbidden"
	reasonDialFailed      = "dial_failed"
)

var refusalReasons = []string{reasonBadRequest, reasonHeadersTooLarge, reasonStreamLimit,
	reasonNotLocal, reasonUnauthenticated, reasonForbidden, reasonDialFailed}

// Values of the side label.
const (
	sideInbound  = "inbound"  // Server
	sideOutbound = "outbound" // Client
)

// sideMetrics are the metrics of one side, with every child resolved up
// front so the data path only does atomic adds.
type sideMetrics struct {
	connections       prometheus.Counter
	connectionsActive prometheus.Gauge
	streams           prometheus.Counter
	streamsActive     prometheus.Gauge
	bytesRx, bytesTx  prometheus.Counter
	handshakeFailures map[string]prometheus.Counter
	refusalsVec       *prometheus.CounterVec
	refusals          map[string]prometheus.Counter
	side              string
}

func (m *sideMetrics) handshakeFailed(reason string) { m.handshakeFailures[reason].Inc() }

func (m *sideMetrics) refused(reason string) {
	if c, ok := m.refusals[reason]; ok {
		c.Inc()
		return
	}
	m.refusalsVec.WithLabelValues(m.side, reason).Inc()
}

// refusedStatus counts a non-200 answer a client received.
func (m *sideMetrics) refusedStatus(code int) { m.refused("status_" + strconv.Itoa(code)) }

// newSideMetrics registers the tunnel metrics on reg (nil: not
// registered). A Client and a Server share each family through the side
// label, so registering twice on one registry reuses the first collectors.
func newSideMetrics(reg prometheus.Registerer, side string) (*sideMetrics, error) {
	conns := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_tunnel_connections_total",
		Help: "HBONE TLS connections established (handshake and preface done).",
	}, []string{"side"})
	connsActive := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_tunnel_connections_active",
		Help: "HBONE TLS connections open now.",
	}, []string{"side"})
	hsFail := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_tunnel_handshake_failures_total",
		Help: "HBONE TLS handshakes that failed, by reason (no_certificate, bad_certificate, wrong_identity, no_alpn, bad_preface, timeout, tls).",
	}, []string{"side", "reason"})
	streams := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_tunnel_streams_total",
		Help: "CONNECT streams requested (inbound: received; outbound: sent).",
	}, []string{"side"})
	streamsActive := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "weft_tunnel_streams_active",
		Help: "CONNECT streams open now.",
	}, []string{"side"})
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_tunnel_refusals_total",
		Help: "CONNECT streams refused, by reason (inbound) or by status received (outbound, status_<code>).",
	}, []string{"side", "reason"})
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_tunnel_bytes_total",
		Help: "Payload bytes through CONNECT streams; direction rx is what the peer sent, tx what we sent.",
	}, []string{"side", "direction"})

	var err error
	if conns, err = register(reg, conns); err != nil {
		return nil, err
	}
	if connsActive, err = register(reg, connsActive); err != nil {
		return nil, err
	}
	if hsFail, err = register(reg, hsFail); err != nil {
		return nil, err
	}
	if streams, err = register(reg, streams); err != nil {
		return nil, err
	}
	if streamsActive, err = register(reg, streamsActive); err != nil {
		return nil, err
	}
	if refusals, err = register(reg, refusals); err != nil {
		return nil, err
	}
	if bytes, err = register(reg, bytes); err != nil {
		return nil, err
	}
	m := &sideMetrics{
		connections:       conns.WithLabelValues(side),
		connectionsActive: connsActive.WithLabelValues(side),
		streams:           streams.WithLabelValues(side),
		streamsActive:     streamsActive.WithLabelValues(side),
		bytesRx:           bytes.WithLabelValues(side, "rx"),
		bytesTx:           bytes.WithLabelValues(side, "tx"),
		handshakeFailures: make(map[string]prometheus.Counter),
		refusalsVec:       refusals,
		refusals:          make(map[string]prometheus.Counter),
		side:              side,
	}
	for _, r := range handshakeReasons {
		m.handshakeFailures[r] = hsFail.WithLabelValues(side, r)
	}
	for _, r := range refusalReasons {
		m.refusals[r] = refusals.WithLabelValues(side, r)
	}
	return m, nil
}

// register registers c on reg (if any), or returns the collector of the
// same kind already registered under that name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
