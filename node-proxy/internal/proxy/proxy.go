// Package proxy is the node proxy: it bootstraps the node's identity,
// follows the control plane's configuration over delta ADS, enrolls pods
// handed over by the CNI plugin (capture rules and listeners inside each
// pod's network namespace), and carries their traffic: outbound
// connections to Services and meshed pods through HBONE tunnels, inbound
// tunnels to the pods after authorization, inbound plaintext according to
// the pod's inbound mode.
//
// Failure is closed: a pod the proxy has captured but cannot serve (no
// configuration for it, no certificate yet, a denied peer) has its
// connections refused, never carried in plaintext.
//
// docs/concepts/node-proxy.md describes the whole flow.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/weftmesh/weft/certs/manager"
	"github.com/weftmesh/weft/node-proxy/internal/enroll"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
	"github.com/weftmesh/weft/node-proxy/internal/redirect"
	"github.com/weftmesh/weft/node-proxy/internal/telemetry"
	"github.com/weftmesh/weft/node-proxy/internal/xdsclient"
)

// Proxy is a running node proxy.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	mgr     *manager.Manager
	signer  *manager.GRPCSigner
	xds     *xdsclient.Client
	rules   redirect.Redirector
	store   enroll.Store

	mesh atomic.Pointer[meshcfg.Config]
	// tracer makes the request spans; disabled without an endpoint.
	tracer *telemetry.Tracer
	// reqMetrics are weft_requests_total and its histogram.
	reqMetrics *reqMetrics
	// accessLog writes a JSON line per request; nil when off.
	accessLog *accessLog
	// clusters is the L7 state of upstream clusters (load balancers,
	// outlier detectors, retry budgets), shared by the node's pods.
	clusters clusters

	mu      sync.Mutex      // guards the fields below
	changed chan struct{}   // closed and replaced when mesh changes
	pods    map[string]*pod // by uid
	closed  bool
}

// New checks cfg and prepares a proxy; Run starts it.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node proxy config: %w", err)
	}
	cfg = cfg.withDefaults()
	pem, err := os.ReadFile(cfg.CABundleFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	bundle, err := x509bundle.Parse(cfg.TrustDomain, pem)
	if err != nil {
		return nil, fmt.Errorf("CA bundle %s: %w", cfg.CABundleFile, err)
	}
	p := &Proxy{
		cfg:     cfg,
		log:     cfg.Log,
		reg:     prometheus.NewRegistry(),
		rules:   redirect.NFTables{},
		store:   enroll.Store{Dir: cfg.StateDir},
		changed: make(chan struct{}),
		pods:    map[string]*pod{},
	}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if p.metrics, err = newMetrics(p.reg, p); err != nil {
		return nil, err
	}
	tcfg := cfg.Tracing
	tcfg.Node = cfg.Node
	if p.tracer, err = telemetry.New(tcfg, p.reg); err != nil {
		return nil, err
	}
	if p.reqMetrics, err = newReqMetrics(p.reg); err != nil {
		return nil, err
	}
	if err := p.reg.Register(outlierCollector{&p.clusters}); err != nil {
		return nil, err
	}
	if p.accessLog, err = openAccessLog(cfg.AccessLog); err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	p.signer = &manager.GRPCSigner{Addr: cfg.ControlPlane, Node: cfg.Node, TrustDomain: cfg.TrustDomain, Credential: cfg.Credential}
	p.mgr, err = manager.New(manager.Config{Signer: p.signer, TrustDomain: cfg.TrustDomain, Bundle: bundle, Log: cfg.Log})
	if err != nil {
		return nil, err
	}
	p.signer.Bundle, p.signer.NodeSVID = p.mgr, p.mgr
	p.xds, err = xdsclient.New(xdsclient.Config{
		Addr:        cfg.ControlPlane,
		Node:        cfg.Node,
		Types:       meshcfg.Types,
		SVID:        p.mgr,
		Bundle:      p.mgr,
		TrustDomain: cfg.TrustDomain,
		Apply:       p.apply,
		Registerer:  p.reg,
		Logger:      cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// apply compiles a new xDS state; an error NACKs it and keeps the last
// good configuration.
func (p *Proxy) apply(st xdsclient.State) error {
	// The xDS client calls apply from one goroutine: the version can be
	// derived from the configuration in force.
	version := uint64(1)
	if prev := p.mesh.Load(); prev != nil {
		version = prev.Version + 1
	}
	mc, err := meshcfg.Build(st.All(), version)
	if err != nil {
		p.log.Warn("configuration rejected, keeping the last good one", "error", err)
		return err
	}
	p.mesh.Store(mc)
	p.mu.Lock()
	close(p.changed)
	p.changed = make(chan struct{})
	pods := p.podList()
	p.mu.Unlock()
	for _, pd := range pods {
		pd.configChanged(mc)
	}
	return nil
}

// config returns the current configuration and a channel closed when it
// changes. The configuration is nil before the first one arrived.
func (p *Proxy) config() (*meshcfg.Config, <-chan struct{}) {
	p.mu.Lock()
	ch := p.changed
	p.mu.Unlock()
	return p.mesh.Load(), ch
}

// Run runs the proxy until ctx ends: bootstrap, then the xDS stream, the
// certificate manager, the servers and the enrollment API. It returns an
// error only if the proxy cannot start (a port in use, an unusable
// enrollment socket).
func Run(ctx context.Context, cfg Config) error {
	p, err := New(cfg)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// Run runs p until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.accessLog != nil {
		go p.accessLog.flushLoop(ctx.Done())
	}
	servers, err := p.listenHTTP()
	if err != nil {
		return err
	}
	ln, err := enroll.Listen(p.cfg.EnrollSocket)
	if err != nil {
		closeAll(servers)
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer p.shutdown()
	for _, s := range servers {
		wg.Go(func() { s.serve(ctx) })
	}

	if err := p.bootstrap(ctx); err != nil {
		ln.Close()
		return err
	}
	wg.Go(func() { p.mgr.Run(ctx) })
	wg.Go(func() { p.signer.WatchBundle(ctx, p.mgr.SetBundle) })
	wg.Go(func() { _ = p.xds.Run(ctx) })
	p.readopt(ctx)
	p.log.Info("node proxy started", "node", p.cfg.Node, "controlPlane", p.cfg.ControlPlane, "enrollSocket", p.cfg.EnrollSocket)
	err = enroll.Serve(ctx, ln, handler{p})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// bootstrap obtains the node SVID, retrying with backoff until ctx ends.
func (p *Proxy) bootstrap(ctx context.Context) error {
	delay := 250 * time.Millisecond
	for {
		err := p.mgr.BootstrapNode(ctx)
		if err == nil {
			return nil
		}
		p.log.Warn("node bootstrap failed, retrying", "error", err, "in", delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootstrap: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// readopt enrolls again the pods the store remembers, as they were: their
// capture rules are still in place, and their listeners died with the
// previous process.
func (p *Proxy) readopt(ctx context.Context) {
	pods, err := p.store.List()
	if err != nil {
		p.log.Error("read enrolled pods", "error", err)
		return
	}
	for _, ep := range pods {
		if err := p.adopt(ctx, ep); err != nil {
			p.log.Warn("could not re-adopt pod; forgetting it", "pod", ep.Ref(), "error", err)
			if err := p.store.Delete(ep.UID); err != nil {
				p.log.Error("forget pod", "pod", ep.Ref(), "error", err)
			}
			continue
		}
		p.log.Info("re-adopted pod", "pod", ep.Ref())
	}
}

// shutdown stops serving every pod, leaving their capture rules in place
// (a restarted proxy re-adopts them; until then their connections are
// refused, never sent in plaintext).
func (p *Proxy) shutdown() {
	p.mu.Lock()
	p.closed = true
	pods := p.podList()
	p.pods = map[string]*pod{}
	p.mu.Unlock()
	for _, pd := range pods {
		pd.stop()
	}
	_ = p.signer.Close()
	if p.accessLog != nil {
		p.accessLog.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.tracer.Shutdown(ctx); err != nil {
		p.log.Warn("flush spans at shutdown", "error", err)
	}
}

// podList returns the enrolled pods. p.mu must be held.
func (p *Proxy) podList() []*pod {
	out := make([]*pod, 0, len(p.pods))
	for _, pd := range p.pods {
		out = append(out, pd)
	}
	return out
}

// Ready reports why the proxy is not ready, or nil: ready means the node
// SVID, a synced configuration and the certificate of every enrolled pod
// the configuration describes.
func (p *Proxy) Ready() error {
	if _, err := p.mgr.NodeSVID(); err != nil {
		return err
	}
	if !p.xds.Synced() || p.mesh.Load() == nil {
		return errors.New("configuration not received yet")
	}
	p.mu.Lock()
	pods := p.podList()
	p.mu.Unlock()
	for _, pd := range pods {
		if err := pd.ready(); err != nil {
			return err
		}
	}
	return nil
}

func closeAll(servers []*httpServer) {
	for _, s := range servers {
		s.ln.Close()
	}
}

// listen opens a TCP listener in the node's namespace.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}
