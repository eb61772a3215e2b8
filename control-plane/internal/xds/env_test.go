package xds

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/control-plane/internal/identity"
)

// testTimeout bounds every wait; tests synchronise on events, never on
// time, and this only turns a hang into a failure.
const testTimeout = 20 * time.Second

// model is the test's stand-in for the control plane's model: workloads by
// node, a revision that changes the endpoint address, and a switch that
// makes the output inconsistent.
type model struct {
	mu        sync.Mutex // guards the fields below
	rev       int
	workloads []workload
	broken    bool                        // the listener names a missing route configuration
	extra     map[string][]types.Resource // added to every node's resources
	builds    map[string]int              // Builder calls by node

	built chan string // receives the node of every Builder call
}

func newModel(workloads ...workload) *model {
	return &model{rev: 1, workloads: workloads, builds: map[string]int{}, built: make(chan string, 10000)}
}

func (m *model) set(rev int, broken bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rev, m.broken = rev, broken
}

func (m *model) buildCount(node string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.builds[node]
}

func (m *model) build(node string) (map[string][]types.Resource, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.builds[node]++
	m.built <- node
	var mine []workload
	for _, w := range m.workloads {
		if w.Node == node {
			mine = append(mine, w)
		}
	}
	res := meshResources(m.rev, mine)
	for typ, list := range m.extra {
		res[typ] = append(res[typ], list...)
	}
	if m.broken {
		delete(res, resourcev3.RouteType)
	}
	return res, nil
}

// logHook passes the server's own log messages to the test.
type logHook struct{ msgs chan string }

func (h logHook) Enabled(context.Context, slog.Level) bool { return true }
func (h logHook) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h logHook) WithGroup(string) slog.Handler            { return h }
func (h logHook) Handle(_ context.Context, r slog.Record) error {
	fromLibrary := false
	r.Attrs(func(a slog.Attr) bool {
		fromLibrary = fromLibrary || a.Key == logKeyComponent
		return true
	})
	if !fromLibrary {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		select {
		case h.msgs <- b.String():
		default:
		}
	}
	return nil
}

type env struct {
	t         *testing.T
	addr      string
	authority *identity.Authority
	ca        *certs.CA // the CA the test started with
	srv       *Server
	reg       *prometheus.Registry
	model     *model
	logs      chan string
}

// start runs an xDS server for m on a real gRPC server on loopback with
// the TLS configuration of port 15012.
func start(t *testing.T, m *model) *env {
	t.Helper()
	return startWith(t, m, func(*Config) {})
}

// startWith is start with a Config changed by tweak.
func startWith(t *testing.T, m *model, tweak func(*Config)) *env {
	t.Helper()
	ca, material := certstest.NewCA(t, nil, certs.Options{})
	authority := identity.NewAuthority(ca, material)
	e := &env{t: t, authority: authority, ca: ca, reg: prometheus.NewRegistry(), model: m, logs: make(chan string, 10000)}
	cfg := Config{
		Builder:      m.build,
		Authenticate: NodeFromPeer(authority),
		Registerer:   e.reg,
		Log:          slog.New(logHook{msgs: e.logs}),
	}
	tweak(&cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(identity.ServerTLS(authority, nil))))
	srv.Register(g)
	go g.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		g.Stop()
	})
	return e
}

// svid signs an SVID for id with the test CA, as the identity service
// would.
func (e *env) svid(id spiffeid.ID) *x509svid.SVID {
	e.t.Helper()
	return certstest.SVID(e.t, e.ca, id)
}

func (e *env) nodeSVID(node string) *x509svid.SVID {
	e.t.Helper()
	return certstest.NodeSVID(e.t, e.ca, node)
}

// dial connects over TLS, verifying the control plane's identity, and
// presents svid as client certificate (none when nil).
func (e *env) dial(svid *x509svid.SVID) discoverygrpc.AggregatedDiscoveryServiceClient {
	e.t.Helper()
	cp := tlsconfig.AuthorizeID(certs.ControlPlaneID(certstest.TrustDomain))
	var cfg *tls.Config
	if svid == nil {
		cfg = tlsconfig.TLSClientConfig(e.ca.Bundle(), cp)
	} else {
		cfg = tlsconfig.MTLSClientConfig(svid, e.ca.Bundle(), cp)
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)
}

// waitLog waits for a log line of the server containing all of parts.
func (e *env) waitLog(parts ...string) string {
	e.t.Helper()
	timeout := time.After(testTimeout)
	for {
		select {
		case line := <-e.logs:
			if containsAll(line, parts) {
				return line
			}
		case <-timeout:
			e.t.Fatalf("no log line with %q", parts)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// counter reads the value of one counter or gauge.
func (e *env) counter(c prometheus.Metric) float64 {
	e.t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		e.t.Fatal(err)
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// view is what a client knows: resources by type and name, and the last
// version of each type.
type view struct {
	resources map[string]map[string]*anypb.Any
	versions  map[string]string // delta: system_version_info; SotW: version_info
}

func newView() *view {
	return &view{resources: map[string]map[string]*anypb.Any{}, versions: map[string]string{}}
}

func (v *view) has(types ...string) bool {
	for _, typ := range types {
		if _, ok := v.versions[typ]; !ok {
			return false
		}
	}
	return true
}

func (v *view) names(typ string) []string { return slices.Sorted(maps.Keys(v.resources[typ])) }

// deltaClient is a node proxy speaking delta ADS.
type deltaClient struct {
	t      *testing.T
	stream discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	err    error // the stream could not be opened
	view   *view
}

// openDelta opens a delta ADS stream and subscribes (wildcard) to types.
// The node is sent on the first request only, as the protocol allows.
func openDelta(t *testing.T, c discoverygrpc.AggregatedDiscoveryServiceClient, nodeID string, types ...string) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	s, err := c.DeltaAggregatedResources(ctx)
	if err != nil { // the handshake failed
		return &deltaClient{t: t, err: err, view: newView()}
	}
	for i, typ := range types {
		req := &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = &corev3.Node{Id: nodeID}
		}
		if err := s.Send(req); err != nil {
			break // the server closed the stream; recv says why
		}
	}
	return &deltaClient{t: t, stream: s, view: newView()}
}

// recv applies and ACKs the next response.
func (c *deltaClient) recv() (*discoverygrpc.DeltaDiscoveryResponse, error) {
	if c.err != nil {
		return nil, c.err
	}
	resp, err := c.stream.Recv()
	if err != nil {
		return nil, err
	}
	typ := resp.GetTypeUrl()
	if c.view.resources[typ] == nil {
		c.view.resources[typ] = map[string]*anypb.Any{}
	}
	for _, r := range resp.GetResources() {
		c.view.resources[typ][r.GetName()] = r.GetResource()
	}
	for _, name := range resp.GetRemovedResources() {
		delete(c.view.resources[typ], name)
	}
	c.view.versions[typ] = resp.GetSystemVersionInfo()
	return resp, c.stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.GetNonce()})
}

// until receives until done reports true.
func (c *deltaClient) until(done func(*view) bool) {
	c.t.Helper()
	for !done(c.view) {
		if _, err := c.recv(); err != nil {
			c.t.Fatalf("delta stream: %v", err)
		}
	}
}

// sotwClient is a node proxy speaking state-of-the-world ADS.
type sotwClient struct {
	t      *testing.T
	stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	err    error // the stream could not be opened
	view   *view
}

func openSotW(t *testing.T, c discoverygrpc.AggregatedDiscoveryServiceClient, nodeID string, types ...string) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	s, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		return &sotwClient{t: t, err: err, view: newView()}
	}
	for i, typ := range types {
		req := &discoverygrpc.DiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = &corev3.Node{Id: nodeID}
		}
		if err := s.Send(req); err != nil {
			break
		}
	}
	return &sotwClient{t: t, stream: s, view: newView()}
}

func (c *sotwClient) recv() (*discoverygrpc.DiscoveryResponse, error) {
	if c.err != nil {
		return nil, c.err
	}
	resp, err := c.stream.Recv()
	if err != nil {
		return nil, err
	}
	typ := resp.GetTypeUrl()
	all := map[string]*anypb.Any{}
	for _, r := range resp.GetResources() {
		all[nameOf(c.t, r)] = r
	}
	c.view.resources[typ] = all
	c.view.versions[typ] = resp.GetVersionInfo()
	return resp, c.stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
}

func (c *sotwClient) until(done func(*view) bool) {
	c.t.Helper()
	for !done(c.view) {
		if _, err := c.recv(); err != nil {
			c.t.Fatalf("SotW stream: %v", err)
		}
	}
}

// nameOf decodes a resource to find its name (state-of-the-world
// responses do not carry names).
func nameOf(t *testing.T, a *anypb.Any) string {
	t.Helper()
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("decode %s: %v", a.GetTypeUrl(), err)
	}
	return ResourceName(m)
}

// refusedWith reports whether err is a gRPC status with code whose
// message contains msg.
func refusedWith(err error, code codes.Code, msg string) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == code && strings.Contains(s.Message(), msg) && !errors.Is(err, context.DeadlineExceeded)
}
