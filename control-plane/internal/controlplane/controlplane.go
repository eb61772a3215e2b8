// Package controlplane wires the control plane's parts together: the CA,
// the sources, the identity service on 15012 and the admin server on 15014.
// cmd/weft-control-plane turns flags into a Config and calls New and Run.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/control-plane/internal/identity"
	"github.com/weftmesh/weft/control-plane/internal/kubeauth"
	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source"
	"github.com/weftmesh/weft/control-plane/internal/source/dir"
	"github.com/weftmesh/weft/control-plane/internal/source/kube"
	"github.com/weftmesh/weft/control-plane/internal/status/kubewriter"
	"github.com/weftmesh/weft/control-plane/internal/translate"
	"github.com/weftmesh/weft/control-plane/internal/xds"
)

// Config is everything the control plane needs. Exactly one of Kube and
// ConfigDir selects the mode.
type Config struct {
	// TrustDomain of the mesh, e.g. "cluster.local".
	TrustDomain string
	// Listen is the address of the identity and xDS port (":15012").
	Listen string
	// AdminListen is the address of the admin HTTP server (":15014"); ""
	// disables it.
	AdminListen string
	// SVIDTTL is the lifetime of workload and node SVIDs; zero means 24h.
	SVIDTTL time.Duration

	// Local mode.
	// ConfigDir holds Kubernetes objects as YAML (watched).
	ConfigDir string
	// StateDir keeps the CA (tls.crt, tls.key, ca.crt) and writes
	// trust-bundle.pem for node proxies.
	StateDir string
	// JoinTokensFile lists "NODE TOKEN" lines for node bootstrap.
	JoinTokensFile string
	// PollInterval is how often ConfigDir and the CA are re-read; zero
	// means 1s in local mode and 30s on Kubernetes.
	PollInterval time.Duration

	// Kubernetes mode.
	// Kube is the API client configuration; nil means local mode.
	Kube *rest.Config
	// Namespace the control plane runs in (its CA Secret and bundle
	// ConfigMap live there).
	Namespace string
	// CASecret is the Secret holding the CA ("weft-ca"). It is created with
	// a new root when absent, or may be supplied (cert-manager layout).
	CASecret string
	// BundleConfigMap receives the trust bundle (key ca.crt) for node proxies
	// to verify the control plane at bootstrap ("weft-trust-bundle").
	BundleConfigMap string
	// NodeProxyServiceAccounts may bootstrap node identities ("ns/name").
	NodeProxyServiceAccounts []string

	// ClusterDomain is the DNS suffix of Service names ("cluster.local").
	ClusterDomain string
	// XDSDebounce groups bursts of changes before pushing; zero means
	// 100ms.
	XDSDebounce time.Duration
	// Leader tunes the leader election that picks the replica writing
	// status (Kubernetes mode).
	Leader LeaderConfig

	// Log receives the control plane's logs; nil means slog.Default().
	Log *slog.Logger
	// Registry receives metrics; nil means a new registry.
	Registry *prometheus.Registry
}

// Validate checks the configuration in one place.
func (c *Config) Validate() error {
	var errs []error
	if _, err := spiffeid.TrustDomainFromString(c.TrustDomain); err != nil {
		errs = append(errs, fmt.Errorf("trust domain %q: %w", c.TrustDomain, err))
	}
	if c.Listen == "" {
		errs = append(errs, errors.New("listen address is required"))
	}
	switch {
	case c.Kube == nil:
		if c.ConfigDir == "" || c.StateDir == "" || c.JoinTokensFile == "" {
			errs = append(errs, errors.New("local mode needs --config-dir, --state-dir and --join-tokens (or use --kubeconfig / in-cluster mode)"))
		}
	default:
		if c.ConfigDir != "" {
			errs = append(errs, errors.New("--config-dir and Kubernetes mode are exclusive"))
		}
		if c.Namespace == "" || c.CASecret == "" {
			errs = append(errs, errors.New("Kubernetes mode needs a namespace and a CA secret name"))
		}
		if len(c.NodeProxyServiceAccounts) == 0 {
			errs = append(errs, errors.New("Kubernetes mode needs at least one node-proxy service account"))
		}
	}
	if c.SVIDTTL < 0 || (c.SVIDTTL > 0 && c.SVIDTTL < 10*time.Minute) {
		errs = append(errs, fmt.Errorf("SVID TTL %s: must be at least 10m", c.SVIDTTL))
	}
	return errors.Join(errs...)
}

// ControlPlane is a configured control plane with its listeners bound.
type ControlPlane struct {
	cfg       Config
	log       *slog.Logger
	authority *identity.Authority
	store     certs.Store
	caOpts    certs.Options
	grpc      *grpc.Server
	ln        net.Listener
	admin     *http.Server
	adminLn   net.Listener
	src       source.Source
	dirSource *dir.Source  // local mode
	kubeSrc   *kube.Source // Kubernetes mode
	client    kubernetes.Interface
	xds       *xds.Server
	status    *kubewriter.Writer // Kubernetes mode
	leader    *leader            // Kubernetes mode
	synced    atomic.Bool        // the source has synced: xDS may be served

	meshMu   sync.Mutex // guards the fields below: the translation of the latest snapshot
	mesh     *translate.Mesh
	meshSnap *model.Snapshot
	meshCA   *certs.CA
}

// New loads (or creates) the CA, reads the sources and binds the ports.
func New(ctx context.Context, cfg Config) (*ControlPlane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	td := spiffeid.RequireTrustDomainFromString(cfg.TrustDomain)
	cp := &ControlPlane{cfg: cfg, log: log, caOpts: certs.Options{TTL: cfg.SVIDTTL}}

	var nodes identity.NodeAuthenticator
	var pods identity.Pods
	if cfg.Kube == nil {
		if cfg.PollInterval == 0 {
			cp.cfg.PollInterval = time.Second
		}
		cp.store = certs.DirStore{Dir: cfg.StateDir}
		tokens, err := identity.LoadJoinTokens(cfg.JoinTokensFile)
		if err != nil {
			return nil, err
		}
		src, err := dir.New(cfg.ConfigDir, log)
		if err != nil {
			return nil, fmt.Errorf("config dir: %w", err)
		}
		cp.dirSource, cp.src, nodes, pods = src, src, tokens, src
	} else {
		if cfg.PollInterval == 0 {
			cp.cfg.PollInterval = 30 * time.Second
		}
		client, err := kubernetes.NewForConfig(cfg.Kube)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		cp.client = client
		cp.store = kube.SecretStore{Client: client, Namespace: cfg.Namespace, Name: cfg.CASecret}
		nodes = &kubeauth.TokenReview{Client: client, ServiceAccounts: cfg.NodeProxyServiceAccounts}
		pods = kube.Pods{Client: client}
		if cp.kubeSrc, err = kube.NewSource(kube.SourceConfig{REST: cfg.Kube, Log: log}); err != nil {
			return nil, err
		}
		cp.src = cp.kubeSrc
		gw, err := gwclient.NewForConfig(cfg.Kube)
		if err != nil {
			return nil, fmt.Errorf("gateway API client: %w", err)
		}
		dyn, err := dynamic.NewForConfig(cfg.Kube)
		if err != nil {
			return nil, fmt.Errorf("dynamic client: %w", err)
		}
		cp.status = &kubewriter.Writer{Gateway: gw, Dynamic: dyn}
		cp.leader = &leader{cfg: cfg.Leader.withDefaults(), client: client, ns: cfg.Namespace, log: log}
	}

	m, created, err := certs.LoadOrCreate(ctx, cp.store, td, nil)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	ca, err := certs.New(td, m, cp.caOpts)
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	cp.authority = identity.NewAuthority(ca, m)
	log.Info("CA ready", "created", created, "ca", cp.authority.String())

	svc, err := identity.NewService(identity.Config{Authority: cp.authority, Nodes: nodes, Pods: pods,
		Metrics: identity.NewMetrics(reg), Log: log, WorkloadTTL: cfg.SVIDTTL, NodeTTL: cfg.SVIDTTL})
	if err != nil {
		return nil, err
	}
	cp.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.ServerTLS(cp.authority, nil))),
		grpc.MaxRecvMsgSize(16<<20))
	identityv1.RegisterIdentityServer(cp.grpc, svc)
	cp.xds, err = xds.New(xds.Config{Builder: cp.build, Authenticate: xds.NodeFromPeer(cp.authority),
		Debounce: cfg.XDSDebounce, Registerer: reg, Log: log})
	if err != nil {
		return nil, err
	}
	cp.xds.Register(cp.grpc)
	if cp.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.AdminListen != "" {
		if cp.adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			cp.ln.Close()
			return nil, fmt.Errorf("listen %s: %w", cfg.AdminListen, err)
		}
		cp.admin = &http.Server{Handler: cp.adminMux(reg), ReadHeaderTimeout: 10 * time.Second}
	}
	return cp, nil
}

// Addr is the bound identity/xDS address.
func (cp *ControlPlane) Addr() net.Addr { return cp.ln.Addr() }

// AdminAddr is the bound admin address, or nil.
func (cp *ControlPlane) AdminAddr() net.Addr {
	if cp.adminLn == nil {
		return nil
	}
	return cp.adminLn.Addr()
}

// Authority is the CA in force (for tests and the admin server).
func (cp *ControlPlane) Authority() *identity.Authority { return cp.authority }

// Run serves until ctx ends, then shuts down.
func (cp *ControlPlane) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		cp.log.Info("serving identity API", "addr", cp.ln.Addr().String())
		return cp.grpc.Serve(cp.ln)
	})
	if cp.admin != nil {
		g.Go(func() error {
			if err := cp.admin.Serve(cp.adminLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		cp.authority.Reload(ctx, cp.store, cp.cfg.PollInterval, cp.caOpts, cp.log)
		return nil
	})
	g.Go(func() error { return cp.publishBundle(ctx) })
	if cp.dirSource != nil {
		g.Go(func() error { cp.dirSource.Run(ctx, cp.cfg.PollInterval); return nil })
	}
	if cp.kubeSrc != nil {
		g.Go(func() error { return cp.kubeSrc.Run(ctx) })
	}
	g.Go(func() error { return cp.xds.Run(ctx) })
	g.Go(func() error { return cp.pushChanges(ctx) })
	if cp.leader != nil {
		g.Go(func() error { return cp.leader.run(ctx, cp.writeStatus) })
	}
	g.Go(func() error {
		<-ctx.Done()
		cp.grpc.Stop()
		if cp.admin != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = cp.admin.Shutdown(sctx)
		}
		return nil
	})
	err := g.Wait()
	if errors.Is(err, grpc.ErrServerStopped) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// publishBundle writes the trust bundle where node proxies read it before
// their first connection: <state-dir>/trust-bundle.pem in local mode, the
// ConfigMap BundleConfigMap on Kubernetes. It rewrites it on every change.
func (cp *ControlPlane) publishBundle(ctx context.Context) error {
	for {
		changed, ca := cp.authority.Changed()
		pem := certs.EncodeCertificatesPEM(ca.Bundle().X509Authorities())
		if err := cp.writeBundle(ctx, pem); err != nil {
			cp.log.Error("publish trust bundle", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func (cp *ControlPlane) writeBundle(ctx context.Context, pem []byte) error {
	if cp.client == nil {
		tmp := filepath.Join(cp.cfg.StateDir, ".trust-bundle.pem.tmp")
		if err := os.WriteFile(tmp, pem, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, filepath.Join(cp.cfg.StateDir, "trust-bundle.pem"))
	}
	if cp.cfg.BundleConfigMap == "" {
		return nil
	}
	cms := cp.client.CoreV1().ConfigMaps(cp.cfg.Namespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cp.cfg.BundleConfigMap, Namespace: cp.cfg.Namespace,
		Labels: map[string]string{"app.kubernetes.io/part-of": "weft"}}, Data: map[string]string{certs.KeyCACrt: string(pem)}}
	_, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
	}
	return err
}

func (cp *ControlPlane) adminMux(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !cp.synced.Load() {
			http.Error(w, "not ready: the configuration source has not synced yet", http.StatusServiceUnavailable)
			return
		}
		if cp.dirSource != nil {
			if err := cp.dirSource.LastError(); err != nil {
				// Serving the last good state; still ready, but say so.
				fmt.Fprintf(w, "ok (config dir has errors, last good state in force: %v)\n", err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /debug/config", cp.xds.DebugHandler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
