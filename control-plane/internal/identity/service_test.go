package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/certs/manager"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// staticPods is a fixed set of pods and namespaces.
type staticPods struct {
	pods map[string]*model.Pod
	nss  map[string]*model.Namespace
}

func (s staticPods) Pod(_ context.Context, ns, name string) (*model.Pod, *model.Namespace, error) {
	p, ok := s.pods[ns+"/"+name]
	if !ok {
		return nil, nil, model.ErrNotFound
	}
	return p, s.nss[ns], nil
}

var testPods = staticPods{
	nss: map[string]*model.Namespace{
		"shop":  {Name: "shop", Annotations: map[string]string{model.MeshKey: model.MeshEnabled}},
		"plain": {Name: "plain"},
	},
	pods: map[string]*model.Pod{
		"shop/cart":     {Namespace: "shop", Name: "cart", UID: "u-cart", NodeName: "node-a", ServiceAccount: "cart-sa"},
		"shop/remote":   {Namespace: "shop", Name: "remote", UID: "u-remote", NodeName: "node-b", ServiceAccount: "remote"},
		"shop/optout":   {Namespace: "shop", Name: "optout", NodeName: "node-a", Annotations: map[string]string{model.MeshKey: model.MeshDisabled}},
		"shop/hostnet":  {Namespace: "shop", Name: "hostnet", NodeName: "node-a", HostNetwork: true},
		"plain/web":     {Namespace: "plain", Name: "web", NodeName: "node-a"},
		"shop/pending":  {Namespace: "shop", Name: "pending"},
		"shop/nosa-pod": {Namespace: "shop", Name: "nosa-pod", NodeName: "node-a"},
	},
}

var joinTokens = JoinTokens{"node-a": "token-for-node-a-0123456789", "node-b": "token-for-node-b-0123456789"}

type testEnv struct {
	addr      string
	authority *Authority
	reg       *prometheus.Registry
	ca        *certs.CA
	material  *certs.Material
}

func start(t *testing.T) *testEnv {
	t.Helper()
	ca, m := certstest.NewCA(t, nil, certs.Options{})
	a := NewAuthority(ca, m)
	reg := prometheus.NewRegistry()
	svc, err := NewService(Config{Authority: a, Nodes: joinTokens, Pods: testPods, Metrics: NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ServerTLS(a, nil))))
	identityv1.RegisterIdentityServer(srv, svc)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return &testEnv{addr: ln.Addr().String(), authority: a, reg: reg, ca: ca, material: m}
}

// node returns a manager bootstrapped as node with the given join token.
func (e *testEnv) node(t *testing.T, node, token string) (*manager.Manager, error) {
	t.Helper()
	g := &manager.GRPCSigner{Addr: e.addr, Node: node, TrustDomain: certstest.TrustDomain,
		Credential: func(r *identityv1.BootstrapNodeRequest) error {
			r.Credential = &identityv1.BootstrapNodeRequest_JoinToken{JoinToken: token}
			return nil
		}}
	m, err := manager.New(manager.Config{Signer: g, TrustDomain: certstest.TrustDomain, Bundle: e.ca.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	g.Bundle, g.NodeSVID = m, m
	t.Cleanup(func() { g.Close() })
	return m, m.BootstrapNode(context.Background())
}

func codeOf(err error) codes.Code {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok {
			return s.Code()
		}
	}
	return codes.Unknown
}

func TestBootstrapNode(t *testing.T) {
	e := start(t)
	m, err := e.node(t, "node-a", joinTokens["node-a"])
	if err != nil {
		t.Fatal(err)
	}
	svid, err := m.NodeSVID()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := svid.ID.String(), "spiffe://cluster.local/weft/node/node-a"; got != want {
		t.Errorf("node SVID = %s, want %s", got, want)
	}
	for _, tc := range []struct{ name, node, token string }{
		{"wrong token", "node-a", "not-the-token-at-all-000"},
		{"another node's token", "node-a", joinTokens["node-b"]},
		{"unknown node", "node-z", joinTokens["node-a"]},
		{"no token", "node-a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.node(t, tc.node, tc.token)
			if codeOf(err) != codes.Unauthenticated {
				t.Errorf("bootstrap error = %v, want Unauthenticated", err)
			}
		})
	}
	if got := e.count(t, "BootstrapNode", ReasonBadCredential); got != 4 {
		t.Errorf("bad_credential refusals counted = %v, want 4", got)
	}
}

// count reads one labelled value of weft_identity_requests_total.
func (e *testEnv) count(t *testing.T, rpc, result string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weft_identity_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["rpc"] == rpc && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestSignWorkload(t *testing.T) {
	e := start(t)
	m, err := e.node(t, "node-a", joinTokens["node-a"])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svid, err := m.AddWorkload(ctx, manager.PodRef{Namespace: "shop", Name: "cart", UID: "u-cart"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := svid.ID.String(), "spiffe://cluster.local/ns/shop/sa/cart-sa"; got != want {
		t.Errorf("workload SVID = %s, want %s (from the pod's service account)", got, want)
	}
	if ttl := svid.Certificates[0].NotAfter.Sub(time.Now()); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("lifetime left = %s, want about 24h", ttl)
	}
	tests := []struct {
		pod    manager.PodRef
		code   codes.Code
		reason string
		msg    string
	}{
		{manager.PodRef{Namespace: "shop", Name: "remote"}, codes.PermissionDenied, ReasonOtherNode, "scheduled on node-b, not on the caller's node node-a"},
		{manager.PodRef{Namespace: "shop", Name: "pending"}, codes.PermissionDenied, ReasonOtherNode, "no node yet"},
		{manager.PodRef{Namespace: "plain", Name: "web"}, codes.FailedPrecondition, ReasonNotEnrolled, "namespace plain lacks weftmesh.io/mesh=enabled"},
		{manager.PodRef{Namespace: "shop", Name: "optout"}, codes.FailedPrecondition, ReasonOptedOut, "opted out"},
		{manager.PodRef{Namespace: "shop", Name: "hostnet"}, codes.FailedPrecondition, ReasonHostNetwork, "host network"},
		{manager.PodRef{Namespace: "shop", Name: "ghost"}, codes.NotFound, ReasonPodNotFound, "pod shop/ghost not found"},
		{manager.PodRef{Namespace: "shop", Name: "cart", UID: "old-uid"}, codes.NotFound, ReasonUIDMismatch, "replaced"},
		{manager.PodRef{Namespace: "", Name: "cart"}, codes.InvalidArgument, ReasonBadRequest, "required"},
	}
	for _, tc := range tests {
		t.Run(tc.reason+"/"+tc.pod.Key(), func(t *testing.T) {
			m.RemoveWorkload(tc.pod.Key())
			_, err := m.AddWorkload(ctx, tc.pod)
			if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error = %v, want %v containing %q", err, tc.code, tc.msg)
			}
			if got := e.count(t, "SignWorkload", tc.reason); got < 1 {
				t.Errorf("refusal %s not counted", tc.reason)
			}
		})
	}
	if got := e.count(t, "SignWorkload", "ok"); got != 1 {
		t.Errorf("ok count = %v, want 1", got)
	}
}

// Without a node SVID, or with a workload's, SignWorkload is refused.
func TestSignWorkloadNeedsNodeSVID(t *testing.T) {
	e := start(t)
	csrKey, _ := certs.NewKey()
	csr, _ := certs.NewCSR(csrKey)
	req := &identityv1.SignWorkloadRequest{Csr: csr, Pod: &identityv1.PodRef{Namespace: "shop", Name: "cart"}}
	dial := func(cfg *tls.Config) identityv1.IdentityClient {
		conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return identityv1.NewIdentityClient(conn)
	}
	cpID := tlsconfig.AuthorizeID(certs.ControlPlaneID(certstest.TrustDomain))
	_, err := dial(tlsconfig.TLSClientConfig(e.ca.Bundle(), cpID)).SignWorkload(context.Background(), req)
	if codeOf(err) != codes.Unauthenticated {
		t.Errorf("no client certificate: %v, want Unauthenticated", err)
	}
	// A node obtains a workload SVID, then tries to use it as a node.
	m, err := e.node(t, "node-a", joinTokens["node-a"])
	if err != nil {
		t.Fatal(err)
	}
	wl, err := m.AddWorkload(context.Background(), manager.PodRef{Namespace: "shop", Name: "cart"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(tlsconfig.MTLSClientConfig(wl, e.ca.Bundle(), cpID)).SignWorkload(context.Background(), req)
	if codeOf(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not a node proxy") {
		t.Errorf("workload SVID as caller: %v, want PermissionDenied", err)
	}
	// A client certificate from a foreign CA fails the handshake.
	foreign, _ := certstest.NewCA(t, nil, certs.Options{})
	fakeNode := certstest.NodeSVID(t, foreign, "node-a")
	_, err = dial(tlsconfig.MTLSClientConfig(fakeNode, e.ca.Bundle(), cpID)).SignWorkload(context.Background(), req)
	if err == nil || codeOf(err) == codes.OK {
		t.Errorf("foreign-CA node certificate accepted")
	}
}

func TestWatchTrustBundleFollowsRotation(t *testing.T) {
	e := start(t)
	m, err := e.node(t, "node-a", joinTokens["node-a"])
	if err != nil {
		t.Fatal(err)
	}
	g := &manager.GRPCSigner{Addr: e.addr, TrustDomain: certstest.TrustDomain, Bundle: m, NodeSVID: m}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan int, 4)
	go g.WatchBundle(ctx, func(b *x509bundle.Bundle) error { got <- len(b.X509Authorities()); return nil })
	if n := <-got; n != 1 {
		t.Fatalf("first bundle has %d roots, want 1", n)
	}
	// Add a second root to ca.crt, as step 1 of a root rotation does.
	newRoot, err := certs.NewRoot(certstest.TrustDomain, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	issuer := e.ca.Issuer()
	m2 := &certs.Material{TLSCrt: certs.EncodeCertificatesPEM([]*x509.Certificate{issuer}), CACrt: append(certs.EncodeCertificatesPEM(e.ca.Bundle().X509Authorities()), newRoot.CACrt...)}
	m2.TLSKey = e.material.TLSKey
	if changed, err := e.authority.Update(m2, certs.Options{}); err != nil || !changed {
		t.Fatalf("Update = %v, %v", changed, err)
	}
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("bundle after rotation step 1 has %d roots, want 2", n)
		}
	case <-ctx.Done():
		t.Fatal("no bundle update streamed")
	}
	// Broken material is refused and changes nothing.
	if _, err := e.authority.Update(&certs.Material{TLSCrt: []byte("junk")}, certs.Options{}); err == nil {
		t.Fatal("broken CA material accepted")
	}
	if n := len(e.authority.CA().Bundle().X509Authorities()); n != 2 {
		t.Fatalf("after a bad update the bundle has %d roots, want 2", n)
	}
}
