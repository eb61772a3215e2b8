package controlplane

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"google.golang.org/grpc/codes"

	"github.com/weftmesh/weft/certs/manager"
)

const localConfig = `apiVersion: v1
kind: Namespace
metadata: {name: shop, annotations: {weftmesh.io/mesh: enabled}}
---
apiVersion: v1
kind: Pod
metadata: {name: cart, namespace: shop}
spec: {nodeName: node-a, serviceAccountName: cart, containers: [{name: app, image: echo}]}
---
apiVersion: v1
kind: Pod
metadata: {name: checkout, namespace: shop}
spec: {nodeName: node-b, serviceAccountName: checkout, containers: [{name: app, image: echo}]}
`

func TestLocalMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	cfgDir, stateDir := filepath.Join(dir, "config"), filepath.Join(dir, "state")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "mesh.yaml"), []byte(localConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "join-tokens")
	if err := os.WriteFile(tokens, []byte("node-a aaaaaaaaaaaaaaaaaaaaaaaa\nnode-b bbbbbbbbbbbbbbbbbbbbbbbb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenA := filepath.Join(dir, "node-a.token")
	if err := os.WriteFile(tokenA, []byte("aaaaaaaaaaaaaaaaaaaaaaaa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() (*ControlPlane, func()) {
		cp, err := New(ctx, Config{TrustDomain: "cluster.local", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
			ConfigDir: cfgDir, StateDir: stateDir, JoinTokensFile: tokens, PollInterval: 20 * time.Millisecond,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cp.Run(runCtx) }()
		return cp, func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	cp, stop := start()
	var bundle *x509bundle.Bundle
	for bundle == nil && ctx.Err() == nil {
		bundle, _ = x509bundle.Load(td, filepath.Join(stateDir, "trust-bundle.pem"))
		time.Sleep(10 * time.Millisecond)
	}
	g := &manager.GRPCSigner{Addr: cp.Addr().String(), Node: "node-a", TrustDomain: td, Credential: manager.JoinTokenFile(tokenA)}
	m, err := manager.New(manager.Config{Signer: g, TrustDomain: td, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	g.Bundle, g.NodeSVID = m, m
	defer g.Close()
	if err := m.BootstrapNode(ctx); err != nil {
		t.Fatal(err)
	}
	svid, err := m.AddWorkload(ctx, manager.PodRef{Namespace: "shop", Name: "cart"})
	if err != nil || svid.ID.String() != "spiffe://cluster.local/ns/shop/sa/cart" {
		t.Fatalf("sign shop/cart = %v, %v", svid, err)
	}
	if _, err := m.AddWorkload(ctx, manager.PodRef{Namespace: "shop", Name: "checkout"}); grpcCode(err) != codes.PermissionDenied {
		t.Fatalf("sign shop/checkout (node-b) from node-a = %v, want PermissionDenied", err)
	}
	// The config dir is watched: move checkout to node-a and it is signed.
	moved := strings.Replace(localConfig, "nodeName: node-b", "nodeName: node-a", 1)
	if err := os.WriteFile(filepath.Join(cfgDir, "mesh.yaml"), []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err = m.AddWorkload(ctx, manager.PodRef{Namespace: "shop", Name: "checkout"}); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after moving checkout to node-a: %v", err)
	}
	first := cp.Authority().CA().Bundle()
	stop()

	// A restart keeps the CA from the state dir.
	cp2, stop2 := start()
	defer stop2()
	if !cp2.Authority().CA().Bundle().Equal(first) {
		t.Fatal("restart made a new root instead of loading --state-dir")
	}
}
