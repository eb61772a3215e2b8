// Command weft-node-proxy is Weft's per-node proxy: it captures the traffic
// of the node's enrolled pods inside their network namespaces and carries
// it between nodes in mutual-TLS HBONE tunnels.
//
// Local mode (the sandbox, no Kubernetes):
//
//	weft-node-proxy --node NAME --control-plane HOST:15012 \
//	  --join-token-file FILE --ca-bundle TRUST-BUNDLE.pem
//
// On Kubernetes, --service-account-token-file replaces the join token (a
// projected token whose audience is the control plane).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/certs/manager"
	"github.com/weftmesh/weft/node-proxy/internal/enroll"
	"github.com/weftmesh/weft/node-proxy/internal/proxy"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "weft-node-proxy:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg proxy.Config
	var td, joinToken, saToken, probes, logLevel string
	fs := flag.NewFlagSet("weft-node-proxy", flag.ExitOnError)
	fs.StringVar(&cfg.Node, "node", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&cfg.ControlPlane, "control-plane", "weft-control-plane.weft-system.svc:15012", "control plane identity and xDS address")
	fs.StringVar(&td, "trust-domain", "cluster.local", "SPIFFE trust domain of the mesh")
	fs.StringVar(&cfg.CABundleFile, "ca-bundle", "/var/run/weft/trust-bundle/ca.crt", "PEM roots that verify the control plane at bootstrap")
	fs.StringVar(&joinToken, "join-token-file", "", "local mode: file holding this node's join token")
	fs.StringVar(&saToken, "service-account-token-file", "", "Kubernetes: the node proxy's service-account token file")
	fs.StringVar(&cfg.EnrollSocket, "enroll-socket", enroll.DefaultSocketPath, "unix socket of the enrollment API (used by weft-cni)")
	fs.StringVar(&cfg.StateDir, "state-dir", "/var/lib/weft/node-proxy", "where enrolled pods are remembered across restarts")
	fs.StringVar(&cfg.AdminListen, "admin-listen", "127.0.0.1:15000", "admin address (workloads, certificates, config dump, pprof); keep it on loopback; empty disables")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", ":15020", "Prometheus metrics address; empty disables")
	fs.StringVar(&cfg.ReadinessListen, "readiness-listen", ":15021", "readiness address (/healthz/ready); empty disables")
	fs.StringVar(&probes, "probe-sources", "", "comma-separated addresses or CIDRs kubelet probes come from; never captured")
	fs.BoolVar(&cfg.OutboundPassthrough, "outbound-passthrough", true, "let enrolled pods reach destinations outside the mesh in plain TCP (false: refuse)")
	fs.DurationVar(&cfg.EnrollWait, "enroll-wait", 0, "how long an enrollment waits for the control plane to describe an unknown pod (default 5s)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	var traceHeaders headerFlag
	fs.StringVar(&cfg.Tracing.Endpoint, "tracing-endpoint", "", "OTLP collector for spans: host:port (gRPC, default port 4317) or an HTTP URL; empty turns tracing off")
	fs.StringVar(&cfg.Tracing.Protocol, "tracing-protocol", "grpc", `OTLP protocol: "grpc" or "http/protobuf"`)
	fs.Var(&traceHeaders, "tracing-header", "header sent with every span export, name=value (repeatable)")
	fs.BoolVar(&cfg.Tracing.Insecure, "tracing-insecure", false, "export spans in plaintext (default TLS)")
	fs.StringVar(&cfg.Tracing.CAFile, "tracing-ca-file", "", "PEM roots that verify the collector (default: the system roots)")
	fs.Float64Var(&cfg.Tracing.SamplingRatio, "tracing-sampling-ratio", 1, "share of new traces recorded (parent-based: an incoming decision is followed)")
	fs.IntVar(&cfg.Tracing.QueueSize, "tracing-queue-size", 4096, "spans held for export; beyond it they are dropped and counted, never waited for")
	fs.StringVar(&cfg.AccessLog, "access-log", "", `JSON access log, one line per HTTP request with its trace ID: a file, "-" for standard output, empty for none`)
	_ = fs.Parse(os.Args[1:])
	cfg.Tracing.Headers = traceHeaders

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var err error
	if cfg.TrustDomain, err = spiffeid.TrustDomainFromString(td); err != nil {
		return fmt.Errorf("--trust-domain: %w", err)
	}
	switch {
	case joinToken != "" && saToken != "":
		return fmt.Errorf("--join-token-file and --service-account-token-file: give one")
	case joinToken != "":
		cfg.Credential = manager.JoinTokenFile(joinToken)
	case saToken != "":
		cfg.Credential = manager.KubernetesTokenFile(saToken)
	}
	for _, s := range strings.Split(probes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return fmt.Errorf("--probe-sources: %w", err)
		}
		cfg.ProbeSources = append(cfg.ProbeSources, p)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return proxy.Run(ctx, cfg)
}

// parsePrefix accepts a CIDR or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// headerFlag collects repeated name=value flags.
type headerFlag map[string]string

func (h *headerFlag) String() string { return fmt.Sprint(map[string]string(*h)) }

func (h *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("%q: want name=value", v)
	}
	if *h == nil {
		*h = headerFlag{}
	}
	(*h)[strings.TrimSpace(name)] = value
	return nil
}
