package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/certs/manager"
	"github.com/weftmesh/weft/node-proxy/internal/redirect"
	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
)

// Config configures a node proxy. Zero durations mean the documented
// defaults; every other field is required unless it says otherwise.
type Config struct {
	// Node is this node's name: the xDS node ID and the name in the node
	// SVID.
	Node string
	// ControlPlane is the host:port of the control plane's identity and
	// xDS port (15012).
	ControlPlane string
	// TrustDomain of the mesh.
	TrustDomain spiffeid.TrustDomain
	// CABundleFile holds the PEM roots that verify the control plane when
	// the node bootstraps. Afterwards the bundle follows the control
	// plane's WatchTrustBundle stream.
	CABundleFile string
	// Credential proves the node's identity at bootstrap: a join token
	// file (local mode) or the node proxy's service-account token.
	Credential manager.Credential

	// EnrollSocket is the unix socket of the enrollment API.
	EnrollSocket string
	// StateDir keeps the enrolled pods, so a restart re-adopts them.
	StateDir string

	// AdminListen serves /workloads, /certs, /config_dump and pprof. It
	// should be a loopback address. Empty disables it.
	AdminListen string
	// MetricsListen serves Prometheus /metrics. Empty disables it.
	MetricsListen string
	// ReadinessListen serves /healthz/ready. Empty disables it.
	ReadinessListen string

	// ProbeSources are the source addresses of kubelet probes (the node's
	// addresses): their TCP into pods is never captured. Optional.
	ProbeSources []netip.Prefix
	// OutboundPassthrough lets an enrolled pod's connections to
	// destinations outside the mesh through in plain TCP. False refuses
	// them.
	OutboundPassthrough bool
	// EnrollWait bounds how long an enrollment waits for the control
	// plane to describe a pod it does not know yet before answering "not
	// meshed". Zero means 5s.
	EnrollWait time.Duration
	// CertWait bounds how long a connection waits for its workload's first
	// certificate before it is refused. Zero means 5s.
	CertWait time.Duration

	// Redirect is the mark and ports of the capture rules. The zero value
	// means the defaults (15001, 15006, 15008, mark 0x539).
	Redirect redirect.Config

	// Tracing configures span export (OTLP); no endpoint: off.
	Tracing telemetry.Config
	// AccessLog is where a JSON line per HTTP request goes: a file path,
	// "-" for standard output, or empty for none.
	AccessLog string

	// Log receives the proxy's logs. Nil discards them.
	Log *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.EnrollWait == 0 {
		c.EnrollWait = 5 * time.Second
	}
	if c.CertWait == 0 {
		c.CertWait = 5 * time.Second
	}
	if c.Redirect.OutboundPort == 0 {
		c.Redirect.OutboundPort = redirect.DefaultOutboundPort
	}
	if c.Redirect.InboundPort == 0 {
		c.Redirect.InboundPort = redirect.DefaultInboundPort
	}
	if c.Redirect.TunnelPort == 0 {
		c.Redirect.TunnelPort = redirect.DefaultTunnelPort
	}
	if c.Redirect.Mark == 0 {
		c.Redirect.Mark = redirect.DefaultMark
	}
	c.Redirect.ProbeSources = c.ProbeSources
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Node == "" {
		errs = append(errs, errors.New("node name is required"))
	}
	if _, _, err := net.SplitHostPort(c.ControlPlane); err != nil {
		errs = append(errs, fmt.Errorf("control plane address %q: want host:port", c.ControlPlane))
	}
	if c.TrustDomain.IsZero() {
		errs = append(errs, errors.New("trust domain is required"))
	}
	if c.CABundleFile == "" {
		errs = append(errs, errors.New("a CA bundle file is required (the roots that verify the control plane)"))
	}
	if c.Credential == nil {
		errs = append(errs, errors.New("a credential is required: a join token file or a service-account token file"))
	}
	for name, p := range map[string]string{"enrollment socket": c.EnrollSocket, "state dir": c.StateDir} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path", name, p))
		}
	}
	for name, a := range map[string]string{"admin": c.AdminListen, "metrics": c.MetricsListen, "readiness": c.ReadinessListen} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s address %q: want host:port", name, a))
		}
	}
	if c.EnrollWait < 0 || c.CertWait < 0 {
		errs = append(errs, errors.New("wait durations must not be negative"))
	}
	if err := c.withDefaults().Redirect.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Tracing.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
