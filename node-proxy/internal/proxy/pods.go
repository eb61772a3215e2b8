package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/certs/manager"
	"github.com/weftmesh/weft/node-proxy/internal/enroll"
	"github.com/weftmesh/weft/node-proxy/internal/meshcfg"
	"github.com/weftmesh/weft/node-proxy/internal/tunnel"
	"github.com/weftmesh/weft/node-proxy/netns"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// handler is the enrollment API's view of the proxy.
type handler struct{ p *Proxy }

var _ enroll.Handler = handler{}

// Add enrolls a pod the control plane describes as enrolled. It waits up to
// EnrollWait for a description of the pod; without a synced configuration
// it fails (the CNI plugin then fails the pod's creation: fail closed).
func (h handler) Add(ctx context.Context, ep enroll.Pod) error {
	p := h.p
	key := ep.Namespace + "/" + ep.Name
	if err := p.waitWorkload(ctx, key, ep.UID); err != nil {
		return err
	}
	p.mu.Lock()
	old := p.pods[ep.UID]
	var replaced *pod
	for _, pd := range p.pods {
		if pd.key == key && pd.ref.UID != ep.UID {
			replaced = pd // a new pod of the same name: the old one is gone
		}
	}
	p.mu.Unlock()
	if old != nil {
		// Enrolled already (a repeated ADD): keep the pod as it is.
		ep.NetNS.Close()
		return nil
	}
	if replaced != nil {
		p.remove(replaced)
	}
	if err := p.adopt(ctx, ep); err != nil {
		return err
	}
	if err := p.store.Save(ep); err != nil {
		if pd := p.pod(ep.UID); pd != nil {
			p.remove(pd)
		}
		return fmt.Errorf("record pod: %w", err)
	}
	p.log.Info("pod enrolled", "pod", ep.Ref(), "netns", ep.NetNSPath)
	return nil
}

// Remove forgets a pod: rules first, then listeners.
func (h handler) Remove(ctx context.Context, ref enroll.PodRef) error {
	p := h.p
	pd := p.pod(ref.UID)
	if pd != nil {
		p.remove(pd)
	}
	if err := p.store.Delete(ref.UID); err != nil {
		return err
	}
	if pd != nil {
		p.log.Info("pod removed", "pod", ref)
	}
	return nil
}

// Check reports whether the pod is enrolled.
func (h handler) Check(ctx context.Context, ref enroll.PodRef) error {
	p := h.p
	if p.pod(ref.UID) != nil {
		return nil
	}
	mc, _ := p.config()
	if mc == nil {
		return errors.New("no configuration from the control plane yet")
	}
	if w, ok := mc.Workload(ref.Namespace + "/" + ref.Name); ok && w.GetUid() == ref.UID {
		return fmt.Errorf("pod %s is part of the mesh but not enrolled", ref)
	}
	return enroll.ErrNotMeshed
}

// pod returns the enrolled pod with this uid, or nil.
func (p *Proxy) pod(uid string) *pod {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pods[uid]
}

// waitWorkload waits until the configuration describes the pod key with
// this uid. It returns enroll.ErrNotMeshed when a synced configuration
// still does not after EnrollWait, and another error when there is no
// configuration at all.
func (p *Proxy) waitWorkload(ctx context.Context, key, uid string) error {
	timer := time.NewTimer(p.cfg.EnrollWait)
	defer timer.Stop()
	for {
		mc, changed := p.config()
		if mc != nil {
			if w, ok := mc.Workload(key); ok && w.GetUid() == uid {
				return nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			if mc == nil || !p.xds.Synced() {
				return fmt.Errorf("pod %s: no configuration from the control plane after %s; refusing to start the pod unmeshed", key, p.cfg.EnrollWait)
			}
			return fmt.Errorf("pod %s (uid %s): %w", key, uid, enroll.ErrNotMeshed)
		}
	}
}

// pod is an enrolled pod: its namespace, listeners, tunnel client and
// server.
type pod struct {
	p         *Proxy
	ref       enroll.PodRef
	key       string // namespace/name
	namespace string
	netnsPath string
	ns        *netns.NS
	dialer    *netns.Dialer
	client    *tunnel.Client
	server    *tunnel.Server
	lns       []net.Listener
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	enrolled  time.Time
	pool      upPool // idle upstream HTTP/1.1 connections

	mu       sync.Mutex       // guards the fields below
	certCh   chan struct{}    // closed once the first certificate is held
	fetching bool             // a certificate fetch loop runs
	certErr  error            // the last fetch error
	h2       *http2.Transport // upstream HTTP/2, made on first use
	h2app    *http2.Transport // HTTP/2 to the pod's own applications (inbound)
}

// adopt opens the pod's listeners, then installs its capture rules, and
// starts serving it. On error nothing is left behind and ep.NetNS is not
// closed (the caller owns it).
func (p *Proxy) adopt(ctx context.Context, ep enroll.Pod) error {
	ns := ep.NetNS
	if ns == nil {
		var err error
		if ns, err = netns.Open(ep.NetNSPath); err != nil {
			return err
		}
	}
	pctx, cancel := context.WithCancel(context.Background())
	pd := &pod{
		p: p, ref: ep.Ref(), key: ep.Namespace + "/" + ep.Name, namespace: ep.Namespace, netnsPath: ep.NetNSPath, ns: ns,
		dialer: &netns.Dialer{NS: ns, Mark: p.cfg.Redirect.Mark, Timeout: 5 * time.Second},
		ctx:    pctx, cancel: cancel, certCh: make(chan struct{}), enrolled: time.Now(),
	}
	fail := func(err error) error {
		cancel()
		for _, ln := range pd.lns {
			ln.Close()
		}
		if ep.NetNS == nil {
			ns.Close()
		}
		return fmt.Errorf("enroll %s: %w", ep.Ref(), err)
	}
	var err error
	pd.client, err = tunnel.NewClient(tunnel.ClientConfig{
		Bundle: p.mgr,
		Dial: func(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
			return pd.dialer.DialContext(ctx, "tcp", addr.String())
		},
		Registerer: p.reg,
		Logger:     p.log,
	})
	if err != nil {
		return fail(err)
	}
	pd.server, err = tunnel.NewServer(tunnel.ServerConfig{
		Certificate: pd.serverCertificate,
		Bundle:      p.mgr,
		IsLocal:     pd.isLocal,
		Authorize:   pd.authorizeTunnel,
		Dial: func(ctx context.Context, peer tunnel.Peer, dst netip.AddrPort) (net.Conn, error) {
			c, err := pd.dialer.DialContext(ctx, "tcp", dst.String())
			if err != nil {
				return nil, err
			}
			_, w, ok := pd.workload()
			if !ok {
				return c, nil
			}
			switch w.PortProtocol(dst.Port()) {
			case xdsv1.Protocol_PROTOCOL_HTTP:
				if p.tracer.Enabled() {
					return &inboundH1{pd: pd, app: c, peer: peer.ID, dst: dst, authorize: pd.authorizeRequest(peer.ID, uint32(dst.Port()))}, nil
				}
				return newIdentityConn(c.(*net.TCPConn), peer.ID, pd.authorizeRequest(peer.ID, uint32(dst.Port()))), nil
			case xdsv1.Protocol_PROTOCOL_HTTP2, xdsv1.Protocol_PROTOCOL_GRPC:
				c.Close() // the requests go through the pod's h2c transport
				return &inboundH2{pd: pd, peer: peer.ID, dst: dst, authorize: pd.authorizeRequest(peer.ID, uint32(dst.Port()))}, nil
			}
			return c, nil
		},
		OnStreamEnd: pd.streamEnded,
		Registerer:  p.reg,
		Logger:      p.log,
	})
	if err != nil {
		return fail(err)
	}
	rc := p.cfg.Redirect
	out, err := netns.Listen(ns, "tcp4", fmt.Sprintf("127.0.0.1:%d", rc.OutboundPort))
	if err != nil {
		return fail(err)
	}
	pd.lns = append(pd.lns, out)
	if out6, err := netns.Listen(ns, "tcp6", fmt.Sprintf("[::1]:%d", rc.OutboundPort)); err == nil {
		pd.lns = append(pd.lns, out6) // no IPv6 in the pod: IPv4 only
	}
	in, err := netns.Listen(ns, "tcp", fmt.Sprintf(":%d", rc.InboundPort))
	if err != nil {
		return fail(err)
	}
	tun, err := netns.Listen(ns, "tcp", fmt.Sprintf(":%d", rc.TunnelPort))
	if err != nil {
		in.Close()
		return fail(err)
	}
	pd.lns = append(pd.lns, in, tun)
	if err := p.rules.Install(ns, rc); err != nil {
		return fail(err)
	}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fail(errors.New("node proxy is shutting down"))
	}
	p.pods[ep.UID] = pd
	p.mu.Unlock()

	for _, ln := range pd.lns[:len(pd.lns)-2] {
		pd.wg.Go(func() { pd.acceptLoop(ln, pd.outbound) })
	}
	pd.wg.Go(func() { pd.acceptLoop(in, pd.inbound) })
	pd.wg.Go(func() { _ = pd.server.Serve(tun) })
	if mc, _ := p.config(); mc != nil {
		pd.configChanged(mc)
	}
	return nil
}

// remove stops serving pd and deletes its rules.
func (p *Proxy) remove(pd *pod) {
	p.mu.Lock()
	if p.pods[pd.ref.UID] == pd {
		delete(p.pods, pd.ref.UID)
	}
	p.mu.Unlock()
	if err := p.rules.Remove(pd.ns); err != nil {
		p.log.Warn("remove capture rules", "pod", pd.ref, "error", err)
	}
	pd.stop()
	p.mgr.RemoveWorkload(pd.key)
}

// stop closes the pod's listeners and connections and its namespace
// handle; its capture rules stay.
func (pd *pod) stop() {
	pd.cancel()
	for _, ln := range pd.lns {
		ln.Close()
	}
	_ = pd.server.Close()
	_ = pd.client.Close()
	pd.pool.closeAll()
	pd.mu.Lock()
	if pd.h2 != nil {
		pd.h2.CloseIdleConnections()
	}
	if pd.h2app != nil {
		pd.h2app.CloseIdleConnections()
	}
	pd.mu.Unlock()
	pd.wg.Wait()
	pd.ns.Close()
}

func (pd *pod) acceptLoop(ln net.Listener, handle func(*net.TCPConn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		pd.wg.Go(func() { handle(c.(*net.TCPConn)) })
	}
}

// workload returns the pod's description in the current configuration.
func (pd *pod) workload() (*meshcfg.Config, *meshcfg.Workload, bool) {
	mc, _ := pd.p.config()
	if mc == nil {
		return nil, nil, false
	}
	w, ok := mc.Workload(pd.key)
	if !ok || w.GetUid() != pd.ref.UID {
		return mc, nil, false
	}
	return mc, w, true
}

// configChanged starts fetching the pod's certificate once the
// configuration describes it.
func (pd *pod) configChanged(mc *meshcfg.Config) {
	w, ok := mc.Workload(pd.key)
	if !ok || w.GetUid() != pd.ref.UID {
		return
	}
	pd.mu.Lock()
	start := !pd.fetching && !closed(pd.certCh)
	pd.fetching = pd.fetching || start
	pd.mu.Unlock()
	if start {
		pd.wg.Go(pd.fetchCertificate)
	}
}

// fetchCertificate obtains the pod's first SVID, retrying with backoff;
// the manager keeps it fresh afterwards.
func (pd *pod) fetchCertificate() {
	delay := 200 * time.Millisecond
	ref := manager.PodRef{Namespace: pd.ref.Namespace, Name: pd.ref.Name, UID: pd.ref.UID}
	for {
		ctx, cancel := context.WithTimeout(pd.ctx, 10*time.Second)
		_, err := pd.p.mgr.AddWorkload(ctx, ref)
		cancel()
		pd.mu.Lock()
		pd.certErr = err
		if err == nil {
			close(pd.certCh)
			pd.fetching = false
		}
		pd.mu.Unlock()
		if err == nil {
			return
		}
		pd.p.log.Warn("workload certificate", "pod", pd.ref, "error", err, "retryIn", delay)
		select {
		case <-pd.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

// svid waits up to CertWait for the pod's certificate.
func (pd *pod) svid(ctx context.Context) (*x509svid.SVID, error) {
	pd.mu.Lock()
	ch := pd.certCh
	pd.mu.Unlock()
	if !closed(ch) {
		t := time.NewTimer(pd.p.cfg.CertWait)
		defer t.Stop()
		select {
		case <-ch:
		case <-t.C:
			pd.mu.Lock()
			err := pd.certErr
			pd.mu.Unlock()
			if err == nil {
				err = errors.New("the control plane has not described the pod yet")
			}
			return nil, fmt.Errorf("no certificate for %s: %w", pd.key, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-pd.ctx.Done():
			return nil, errors.New("pod removed")
		}
	}
	return pd.p.mgr.Workload(pd.key)
}

// ready reports whether the pod is served: its certificate is held, or the
// configuration does not describe it (nothing to wait for).
func (pd *pod) ready() error {
	if _, _, ok := pd.workload(); !ok {
		return nil
	}
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if !closed(pd.certCh) {
		return fmt.Errorf("pod %s: no certificate yet", pd.key)
	}
	return nil
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
