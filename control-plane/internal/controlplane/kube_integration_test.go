package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/manager"
	"github.com/weftmesh/weft/tests/kube"
)

var cluster *kube.Cluster

func TestMain(m *testing.M) { os.Exit(kube.Main(m, &cluster)) }

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// fixture creates namespaces, service accounts and pods (spec.nodeName set
// by hand: no scheduler runs) and returns the pods by "ns/name".
func fixture(t *testing.T, ctx context.Context, cs kubernetes.Interface) map[string]*corev1.Pod {
	t.Helper()
	nss := []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "weft-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: map[string]string{"weftmesh.io/mesh": "enabled"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "labelled", Labels: map[string]string{"weftmesh.io/mesh": "enabled"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
	}
	for _, ns := range nss {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sa := range []string{"weft-system/weft-node-proxy", "weft-system/intruder", "shop/cart", "shop/remote", "shop/optout", "labelled/api", "plain/web"} {
		ns, name, _ := strings.Cut(sa, "/")
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type podSpec struct {
		key, sa, node string
		annotations   map[string]string
		hostNetwork   bool
	}
	specs := []podSpec{
		{key: "weft-system/node-proxy-a", sa: "weft-node-proxy", node: "node-a", hostNetwork: true},
		{key: "weft-system/intruder-a", sa: "intruder", node: "node-a"},
		{key: "shop/cart", sa: "cart", node: "node-a"},
		{key: "shop/remote", sa: "remote", node: "node-b"},
		{key: "shop/optout", sa: "optout", node: "node-a", annotations: map[string]string{"weftmesh.io/mesh": "disabled"}},
		{key: "labelled/api", sa: "api", node: "node-a"},
		{key: "plain/web", sa: "web", node: "node-a"},
	}
	out := map[string]*corev1.Pod{}
	for _, s := range specs {
		ns, name, _ := strings.Cut(s.key, "/")
		p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: s.annotations},
			Spec: corev1.PodSpec{NodeName: s.node, ServiceAccountName: s.sa, HostNetwork: s.hostNetwork,
				Containers: []corev1.Container{{Name: "app", Image: "weft-echo:dev"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pod %s: %v", s.key, err)
		}
		out[s.key] = p
	}
	return out
}

func startControlPlane(t *testing.T, ctx context.Context) *ControlPlane {
	t.Helper()
	cp, err := New(ctx, Config{
		TrustDomain: td.Name(), Listen: "127.0.0.1:0", Kube: cluster.Config,
		Namespace: "weft-system", CASecret: "weft-ca", BundleConfigMap: "weft-trust-bundle",
		NodeProxyServiceAccounts: []string{"weft-system/weft-node-proxy"},
		Log:                      slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cp.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane Run: %v", err)
		}
	})
	return cp
}

// nodeProxy is a certificate manager bootstrapping with a Kubernetes token.
func nodeProxy(t *testing.T, addr, node, token string, bundle *x509bundle.Bundle) *manager.Manager {
	t.Helper()
	g := &manager.GRPCSigner{Addr: addr, Node: node, TrustDomain: td,
		Credential: func(r *identityv1.BootstrapNodeRequest) error {
			r.Credential = &identityv1.BootstrapNodeRequest_KubernetesToken{KubernetesToken: token}
			return nil
		}}
	m, err := manager.New(manager.Config{Signer: g, TrustDomain: td, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	g.Bundle, g.NodeSVID = m, m
	t.Cleanup(func() { g.Close() })
	return m
}

func grpcCode(err error) codes.Code {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Code()
	}
	return codes.Unknown
}

func TestIdentityOnKubernetes(t *testing.T) {
	c := kube.Require(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := c.Clientset()
	pods := fixture(t, ctx, cs)
	cp := startControlPlane(t, ctx)
	addr := cp.Addr().String()

	// The root was created in the Secret and the bundle published for node
	// proxies to verify the control plane at bootstrap.
	var bundle *x509bundle.Bundle
	for bundle == nil {
		cm, err := cs.CoreV1().ConfigMaps("weft-system").Get(ctx, "weft-trust-bundle", metav1.GetOptions{})
		if err == nil {
			if bundle, err = x509bundle.Parse(td, []byte(cm.Data["ca.crt"])); err != nil {
				t.Fatalf("published bundle: %v", err)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("trust bundle ConfigMap never published")
		case <-time.After(50 * time.Millisecond):
		}
	}
	sec, err := cs.CoreV1().Secrets("weft-system").Get(ctx, "weft-ca", metav1.GetOptions{})
	if err != nil || len(sec.Data["tls.key"]) == 0 {
		t.Fatalf("CA secret: %v", err)
	}

	token := func(ns, sa string, aud []string, pod *corev1.Pod) string {
		t.Helper()
		tok, err := c.ServiceAccountToken(ctx, ns, sa, aud, pod)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	proxyToken := token("weft-system", "weft-node-proxy", []string{"weft"}, pods["weft-system/node-proxy-a"])

	// A node proxy's TokenRequest token bootstraps node-a.
	nodeA := nodeProxy(t, addr, "node-a", proxyToken, bundle)
	if err := nodeA.BootstrapNode(ctx); err != nil {
		t.Fatalf("bootstrap node-a with its service-account token: %v", err)
	}
	if s, _ := nodeA.NodeSVID(); s.ID.String() != "spiffe://cluster.local/weft/node/node-a" {
		t.Fatalf("node SVID = %s", s.ID)
	}

	t.Run("bootstrap refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name, node, token string
			code              codes.Code
			msg               string
		}{
			{"token of a pod on another node", "node-b", proxyToken, codes.PermissionDenied, "on node node-a"},
			{"wrong audience", "node-a", token("weft-system", "weft-node-proxy", []string{"not-weft"}, pods["weft-system/node-proxy-a"]), codes.Unauthenticated, `audience "weft"`},
			{"another service account", "node-a", token("weft-system", "intruder", []string{"weft"}, pods["weft-system/intruder-a"]), codes.PermissionDenied, "may not bootstrap"},
			{"token not bound to a pod", "node-a", token("weft-system", "weft-node-proxy", []string{"weft"}, nil), codes.Unauthenticated, "not bound to a pod"},
			{"garbage", "node-a", "not.a.token", codes.Unauthenticated, "not valid"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := nodeProxy(t, addr, tc.node, tc.token, bundle).BootstrapNode(ctx)
				if grpcCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("bootstrap = %v, want %v containing %q", err, tc.code, tc.msg)
				}
			})
		}
	})

	t.Run("workload signing", func(t *testing.T) {
		for _, tc := range []struct {
			pod  string
			uid  string
			code codes.Code
			id   string
			msg  string
		}{
			{pod: "shop/cart", uid: string(pods["shop/cart"].UID), code: codes.OK, id: "spiffe://cluster.local/ns/shop/sa/cart"},
			{pod: "labelled/api", code: codes.OK, id: "spiffe://cluster.local/ns/labelled/sa/api"},
			{pod: "shop/remote", code: codes.PermissionDenied, msg: "scheduled on node-b"},
			{pod: "plain/web", code: codes.FailedPrecondition, msg: "namespace plain lacks weftmesh.io/mesh=enabled"},
			{pod: "shop/optout", code: codes.FailedPrecondition, msg: "opted out"},
			{pod: "shop/ghost", code: codes.NotFound, msg: "not found"},
			{pod: "shop/cart", uid: "3f0c0c0c-0000-0000-0000-000000000000", code: codes.NotFound, msg: "replaced"},
		} {
			t.Run(tc.pod, func(t *testing.T) {
				ns, name, _ := strings.Cut(tc.pod, "/")
				nodeA.RemoveWorkload(tc.pod)
				svid, err := nodeA.AddWorkload(ctx, manager.PodRef{Namespace: ns, Name: name, UID: tc.uid})
				if tc.code == codes.OK {
					if err != nil {
						t.Fatalf("sign %s: %v", tc.pod, err)
					}
					if svid.ID.String() != tc.id {
						t.Errorf("SVID = %s, want %s", svid.ID, tc.id)
					}
					return
				}
				if grpcCode(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
					t.Errorf("sign %s = %v, want %v containing %q", tc.pod, err, tc.code, tc.msg)
				}
			})
		}
	})

	t.Run("a second replica uses the same CA", func(t *testing.T) {
		cp2 := startControlPlane(t, ctx)
		if !cp2.Authority().CA().Bundle().Equal(cp.Authority().CA().Bundle()) {
			t.Fatal("second control plane made a different root instead of loading the Secret")
		}
		if _, err := certs.New(td, &certs.Material{TLSCrt: sec.Data["tls.crt"], TLSKey: sec.Data["tls.key"], CACrt: sec.Data["ca.crt"]}, certs.Options{}); err != nil {
			t.Fatalf("stored CA does not load: %v", err)
		}
	})
}
