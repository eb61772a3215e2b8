package controlplane

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	echov1 "github.com/weftmesh/weft/api/echo/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/proxyless"
	"github.com/weftmesh/weft/tests/apps/echo"
)

const proxylessConfig = `apiVersion: v1
kind: Namespace
metadata: {name: grpc, annotations: {weftmesh.io/mesh: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: grpc}
spec:
  clusterIP: 10.96.7.1
  selector: {app: echo-v1}
  ports: [{name: grpc, port: 9090, targetPort: PORT, appProtocol: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-v2, namespace: grpc}
spec:
  clusterIP: 10.96.7.2
  selector: {app: echo-v2}
  ports: [{name: grpc, port: 9090, targetPort: PORT, appProtocol: grpc}]
---
apiVersion: v1
kind: Pod
metadata: {name: echo-v1, namespace: grpc, labels: {app: echo-v1}}
spec: {nodeName: node-a, containers: [{name: echo, image: weft-echo}]}
status: {podIP: 127.0.0.2}
---
apiVersion: v1
kind: Pod
metadata: {name: echo-v2, namespace: grpc, labels: {app: echo-v2}}
spec: {nodeName: node-b, containers: [{name: echo, image: weft-echo}]}
status: {podIP: 127.0.0.3}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo-canary, namespace: grpc}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 9090}]
  rules:
  - backendRefs:
    - {name: echo, port: 9090, weight: V1}
    - {name: echo-v2, port: 9090, weight: V2}
`

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestProxylessGRPC bootstraps a real gRPC-Go client (xds:/// resolver)
// against the control plane over mutual TLS with the weft-spiffe
// credentials, and checks that it routes by the GRPCRoute's weights and
// follows a weight change.
func TestProxylessGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Two echo servers on the same port of two loopback addresses: the
	// "pods" echo-v1 (127.0.0.2) and echo-v2 (127.0.0.3).
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	for i, pod := range []string{"echo-v1", "echo-v2"} {
		s, err := echo.Start(echo.Config{Pod: pod, Namespace: "grpc", GRPCAddr: fmt.Sprintf("127.0.0.%d:%d", i+2, port)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
	}

	dir := t.TempDir()
	cfgDir, stateDir := filepath.Join(dir, "config"), filepath.Join(dir, "state")
	writeConfig := func(v1, v2 int) {
		c := strings.NewReplacer("PORT", fmt.Sprint(port), "V1", fmt.Sprint(v1), "V2", fmt.Sprint(v2)).Replace(proxylessConfig)
		if err := os.MkdirAll(cfgDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfgDir, "mesh.yaml"), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(75, 25)
	tokens := filepath.Join(dir, "join-tokens")
	if err := os.WriteFile(tokens, []byte("node-a aaaaaaaaaaaaaaaaaaaaaaaa\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cp, err := New(ctx, Config{TrustDomain: "cluster.local", Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", ConfigDir: cfgDir, StateDir: stateDir,
		JoinTokensFile: tokens, PollInterval: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cp.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// The client's credentials: a node SVID for node-a, and the trust bundle.
	ca := cp.Authority().CA()
	svid := certstest.NodeSVID(t, ca, "node-a")
	chain := svid.Certificates
	keyPEM, _ := certs.EncodePrivateKeyPEM(svid.PrivateKey)
	creds := proxyless.CredentialsConfig{CertificateFile: filepath.Join(dir, "svid.pem"), PrivateKeyFile: filepath.Join(dir, "svid-key.pem"),
		TrustBundleFile: filepath.Join(dir, "ca.crt"), TrustDomain: "cluster.local"}
	for f, b := range map[string][]byte{creds.CertificateFile: certs.EncodeCertificatesPEM(chain), creds.PrivateKeyFile: keyPEM,
		creds.TrustBundleFile: certs.EncodeCertificatesPEM(ca.Bundle().X509Authorities())} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bootstrap, err := proxyless.Bootstrap(cp.Addr().String(), "node-a", creds)
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo.grpc.svc.cluster.local:9090", grpc.WithResolvers(resolver),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := echov1.NewEchoClient(conn)

	call := func() string {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		r, err := client.Echo(cctx, &echov1.EchoRequest{Message: "hi"}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("Echo through xds:///: %v", err)
		}
		return r.GetPod()
	}
	const n = 800
	v2 := 0
	for range n {
		if call() == "echo-v2" {
			v2++
		}
	}
	// 25% of 800: the standard deviation is about 1.5 points; allow 5.
	share := 100 * float64(v2) / n
	if math.Abs(share-25) > 5 {
		t.Errorf("echo-v2 got %.1f%% of %d calls, want 25%% ± 5", share, n)
	}
	t.Logf("75/25 GRPCRoute split: echo-v2 served %.1f%% of %d calls", share, n)

	// The admin server shows node-a's configuration and the xDS metrics.
	admin := "http://" + cp.AdminAddr().String()
	for path, want := range map[string][]string{
		"/debug/config?node=node-a": {"echo.grpc.svc.cluster.local:9090", "outbound|9090||echo-v2.grpc.svc.cluster.local"},
		"/metrics":                  {"weft_xds_", "process_resident_memory_bytes"},
		"/readyz":                   {"ok"},
		"/healthz":                  {"ok"},
	} {
		body := httpGet(t, admin+path)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", path, w)
			}
		}
	}

	// Shift all traffic to v2: the client follows without reconnecting.
	writeConfig(0, 100)
	streak := 0
	for streak < 50 {
		if call() == "echo-v2" {
			streak++
		} else {
			streak = 0
		}
		if ctx.Err() != nil {
			t.Fatal("the client never moved to 0/100")
		}
	}
}
