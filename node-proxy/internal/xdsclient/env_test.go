package xdsclient

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/config"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

// The types a node proxy subscribes to.
const (
	routeType       = typePrefix + "envoy.config.route.v3.RouteConfiguration"
	clusterType     = typePrefix + "envoy.config.cluster.v3.Cluster"
	endpointType    = typePrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
	workloadType    = typePrefix + "weft.xds.v1.Workload"
	trustBundleType = typePrefix + "weft.xds.v1.TrustBundle"
)

var nodeTypes = []string{listenerType, routeType, clusterType, endpointType, workloadType, serviceType, trustBundleType}

// resources is what a test server serves: type URL -> name -> resource.
type resources map[string]map[string]types.Resource

// initialResources gives every type one or two resources.
func initialResources() resources {
	return resources{
		listenerType:    {"l1": &listenerv3.Listener{Name: "l1"}, "l2": &listenerv3.Listener{Name: "l2"}},
		routeType:       {"r1": &routev3.RouteConfiguration{Name: "r1"}},
		clusterType:     {"c1": &clusterv3.Cluster{Name: "c1"}},
		endpointType:    {"c1": &endpointv3.ClusterLoadAssignment{ClusterName: "c1"}},
		workloadType:    {"ns/pod": &xdsv1.Workload{Name: "ns/pod"}},
		serviceType:     {"ns/svc": &xdsv1.Service{Name: "ns/svc"}},
		trustBundleType: {"cluster.local": &xdsv1.TrustBundle{Name: "cluster.local"}},
	}
}

// env is a CA, a node identity and the node's rotatable SVID.
type env struct {
	ca   *certs.CA
	node string
	svid *svidSource
	logs io.Writer // where clients log; nil means the test's output
}

func newEnv(t testing.TB) *env {
	ca, _ := certstest.NewCA(t, nil, certs.Options{})
	e := &env{ca: ca, node: "node-a", svid: &svidSource{}}
	e.svid.set(certstest.NodeSVID(t, ca, e.node))
	return e
}

// svidSource is an x509svid.Source whose SVID can be replaced.
type svidSource struct {
	mu   sync.Mutex // guards svid
	svid *x509svid.SVID
}

func (s *svidSource) set(svid *x509svid.SVID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.svid = svid
}

func (s *svidSource) GetX509SVID() (*x509svid.SVID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.svid, nil
}

// server is a real go-control-plane ADS server over mTLS, one
// LinearCache per type, recording what goes over its streams.
type server struct {
	addr   string
	caches map[string]*cachev3.LinearCache
	grpc   *grpc.Server
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex // guards the fields below
	requests  []*discoveryv3.DeltaDiscoveryRequest
	responses []*discoveryv3.DeltaDiscoveryResponse
	serials   []string // serial numbers of the client certificates, per stream
}

// serverConfig says how a test server is started.
type serverConfig struct {
	addr string      // "" means a free port
	id   spiffeid.ID // the server's SVID; zero means certs.ControlPlaneID
	// snapshot serves the Envoy types from a SnapshotCache, as Weft's
	// control plane does, instead of LinearCaches; caches then holds only
	// the Weft types.
	snapshot bool
	opts     []config.XDSOption
}

// startServer serves res as the control plane on addr ("" means a free
// port), accepting only e's node.
func (e *env) startServer(t *testing.T, addr string, res resources, opts ...config.XDSOption) *server {
	t.Helper()
	return e.start(t, serverConfig{addr: addr, opts: opts}, res)
}

func (e *env) start(t *testing.T, sc serverConfig, res resources) *server {
	t.Helper()
	if sc.id.IsZero() {
		sc.id = certs.ControlPlaneID(certstest.TrustDomain)
	}
	s := &server{caches: map[string]*cachev3.LinearCache{}, done: make(chan struct{})}
	mux := &cachev3.MuxCache{
		Classify:      func(r *cachev3.Request) string { return r.GetTypeUrl() },
		ClassifyDelta: func(r *cachev3.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        map[string]cachev3.Cache{},
	}
	var snapshots cachev3.SnapshotCache
	envoy := map[resourcev3.Type][]types.Resource{}
	if sc.snapshot {
		snapshots = cachev3.NewSnapshotCache(false, cachev3.IDHash{}, gcplog.NewDefaultLogger())
	}
	for _, typ := range nodeTypes {
		if sc.snapshot && strings.HasPrefix(typ, typePrefix+"envoy.") {
			mux.Caches[typ] = snapshots
			for _, r := range res[typ] {
				envoy[typ] = append(envoy[typ], r)
			}
			continue
		}
		s.caches[typ] = cachev3.NewLinearCache(typ, cachev3.WithInitialResources(res[typ]))
		mux.Caches[typ] = s.caches[typ]
	}
	if sc.snapshot {
		snap, err := cachev3.NewSnapshot("1", envoy)
		if err != nil {
			t.Fatal(err)
		}
		if err := snapshots.SetSnapshot(context.Background(), e.node, snap); err != nil {
			t.Fatal(err)
		}
	}
	nodeID, err := certs.NodeID(certstest.TrustDomain, e.node)
	if err != nil {
		t.Fatal(err)
	}
	tc := tlsconfig.MTLSServerConfig(certstest.SVID(t, e.ca, sc.id), e.ca.Bundle(), tlsconfig.AuthorizeID(nodeID))
	s.grpc = grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(s.grpc, serverv3.NewServer(ctx, mux, serverv3.CallbackFuncs{
		DeltaStreamOpenFunc: func(ctx context.Context, _ int64, _ string) error {
			if p, ok := peer.FromContext(ctx); ok {
				if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
					s.mu.Lock()
					s.serials = append(s.serials, info.State.PeerCertificates[0].SerialNumber.String())
					s.mu.Unlock()
				}
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoveryv3.DeltaDiscoveryRequest) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.requests = append(s.requests, proto.Clone(r).(*discoveryv3.DeltaDiscoveryRequest))
			return nil
		},
		StreamDeltaResponseFunc: func(_ int64, _ *discoveryv3.DeltaDiscoveryRequest, r *discoveryv3.DeltaDiscoveryResponse) {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.responses = append(s.responses, proto.Clone(r).(*discoveryv3.DeltaDiscoveryResponse))
		},
	}, sc.opts...))
	ln := listen(t, sc.addr)
	s.addr = ln.Addr().String()
	go func() {
		defer close(s.done)
		_ = s.grpc.Serve(ln)
	}()
	t.Cleanup(s.stop)
	return s
}

// listen listens on addr, waiting for a port just released to be free.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("listen %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop closes the listener and every connection; it may be called twice.
func (s *server) stop() {
	s.cancel()
	s.grpc.Stop()
	<-s.done
}

func (s *server) recorded() ([]*discoveryv3.DeltaDiscoveryRequest, []*discoveryv3.DeltaDiscoveryResponse, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*discoveryv3.DeltaDiscoveryRequest(nil), s.requests...),
		append([]*discoveryv3.DeltaDiscoveryResponse(nil), s.responses...),
		append([]string(nil), s.serials...)
}

// nacks returns the error_detail messages the server received.
func (s *server) nacks() []string {
	reqs, _, _ := s.recorded()
	var msgs []string
	for _, r := range reqs {
		if r.GetErrorDetail() != nil {
			msgs = append(msgs, r.GetErrorDetail().GetMessage())
		}
	}
	return msgs
}

// applied records every state the client applied; reject, when set,
// decides whether Apply refuses one.
type applied struct {
	mu     sync.Mutex // guards the fields below
	states []State
	reject func(State) error
}

func (a *applied) apply(s State) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reject != nil {
		if err := a.reject(s); err != nil {
			return err
		}
	}
	a.states = append(a.states, s)
	return nil
}

func (a *applied) setReject(f func(State) error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reject = f
}

func (a *applied) all() []State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]State(nil), a.states...)
}

// testClient is a running Client and what it applied.
type testClient struct {
	*Client
	applied *applied
	reg     *prometheus.Registry
	logs    *logCounter
	stop    func() error // cancels Run and returns what it returned
}

// newClient returns a client of addr, not running.
func (e *env) newClient(t *testing.T, addr string) *testClient {
	t.Helper()
	w := e.logs
	if w == nil {
		w = t.Output()
	}
	tc := &testClient{applied: &applied{}, reg: prometheus.NewRegistry(),
		logs: &logCounter{Handler: slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}), n: map[string]int{}}}
	c, err := New(Config{
		Addr:        addr,
		Node:        e.node,
		Types:       nodeTypes,
		SVID:        e.svid,
		Bundle:      e.ca.Bundle(),
		TrustDomain: certstest.TrustDomain,
		Apply:       tc.applied.apply,
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  200 * time.Millisecond,
		Registerer:  tc.reg,
		Logger:      slog.New(tc.logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	tc.Client = c
	return tc
}

// start runs the client until the test ends.
func (tc *testClient) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tc.Run(ctx) }()
	tc.stop = func() error {
		cancel()
		select {
		case err := <-done:
			done <- err
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Run did not return within 10s of its context ending")
		}
	}
	t.Cleanup(func() {
		if err := tc.stop(); err != nil {
			t.Error(err)
		}
	})
}

// metric returns the value of the metric name with the given labels.
func (tc *testClient) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := tc.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// names returns the names held per type.
func names(s State) map[string][]string {
	m := map[string][]string{}
	for _, typ := range s.Types() {
		for name := range s.Resources(typ) {
			m[typeLabel(typ)] = append(m[typeLabel(typ)], name)
		}
		slices.Sort(m[typeLabel(typ)])
	}
	return m
}

// logCounter is a slog.Handler that counts records by message.
type logCounter struct {
	slog.Handler
	mu sync.Mutex // guards n
	n  map[string]int
}

func (l *logCounter) Handle(ctx context.Context, r slog.Record) error {
	l.mu.Lock()
	l.n[r.Message]++
	l.mu.Unlock()
	return l.Handler.Handle(ctx, r)
}

func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}
