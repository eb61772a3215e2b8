// Command weft-control-plane is Weft's control plane: the mesh CA and
// identity API, and (from Step 2) xDS for the node proxies.
//
// Local mode (no Kubernetes):
//
//	weft-control-plane --config-dir DIR --state-dir DIR --join-tokens FILE
//
// Kubernetes mode: in-cluster, or with --kubeconfig.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/control-plane/internal/controlplane"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "weft-control-plane:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg controlplane.Config
	var kubeconfig, serviceAccounts, logLevel string
	fs := flag.NewFlagSet("weft-control-plane", flag.ExitOnError)
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of the mesh")
	fs.StringVar(&cfg.Listen, "listen", ":15012", "address of the identity and xDS port (mTLS)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", ":15014", "address of the admin HTTP server (/healthz, /readyz, /metrics, pprof); empty disables it")
	fs.DurationVar(&cfg.SVIDTTL, "svid-ttl", 24*time.Hour, "lifetime of issued SVIDs")
	fs.StringVar(&cfg.ConfigDir, "config-dir", "", "local mode: directory of Kubernetes objects as YAML, watched for changes")
	fs.StringVar(&cfg.StateDir, "state-dir", "", "local mode: where the CA is kept (tls.crt, tls.key, ca.crt) and trust-bundle.pem is written")
	fs.StringVar(&cfg.JoinTokensFile, "join-tokens", "", "local mode: file of \"NODE TOKEN\" lines that node proxies bootstrap with")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 0, "how often the config dir and CA are re-read (default 1s local, 30s Kubernetes)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Kubernetes mode: kubeconfig file (default: in-cluster configuration)")
	fs.StringVar(&cfg.Namespace, "namespace", envOr("POD_NAMESPACE", "weft-system"), "Kubernetes mode: the control plane's namespace")
	fs.StringVar(&cfg.CASecret, "ca-secret", "weft-ca", "Kubernetes mode: Secret with the CA (tls.crt, tls.key, ca.crt); created with a new root when absent")
	fs.StringVar(&cfg.BundleConfigMap, "bundle-configmap", "weft-trust-bundle", "Kubernetes mode: ConfigMap the trust bundle is published to (key ca.crt)")
	fs.StringVar(&serviceAccounts, "node-proxy-service-accounts", "weft-system/weft-node-proxy", "Kubernetes mode: comma-separated NAMESPACE/NAME of service accounts that may bootstrap node identities")
	fs.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "DNS suffix of Service names")
	fs.DurationVar(&cfg.XDSDebounce, "xds-debounce", 100*time.Millisecond, "how long a burst of changes is grouped before it is pushed")
	fs.StringVar(&cfg.Leader.Identity, "leader-identity", os.Getenv("POD_NAME"), "Kubernetes mode: this replica's name in leader election (default: hostname + random)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	_ = fs.Parse(os.Args[1:])

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if cfg.ConfigDir == "" {
		kc, err := kubeConfig(kubeconfig)
		if err != nil {
			return err
		}
		cfg.Kube = kc
		for _, sa := range strings.Split(serviceAccounts, ",") {
			if sa = strings.TrimSpace(sa); sa != "" {
				cfg.NodeProxyServiceAccounts = append(cfg.NodeProxyServiceAccounts, sa)
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cp, err := controlplane.New(ctx, cfg)
	if err != nil {
		return err
	}
	return cp.Run(ctx)
}

func kubeConfig(path string) (*rest.Config, error) {
	if path != "" {
		c, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no --config-dir (local mode) and no Kubernetes: %w", err)
	}
	return c, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
