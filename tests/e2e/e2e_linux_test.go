//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/net/http2"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/sandbox"
)

const (
	echoID = "spiffe://cluster.local/ns/demo/sa/echo"
)

// The topology: 2 nodes; on each, echo-n<i>-p0 (demo, STRICT),
// echo-n<i>-p1 (demo, PERMISSIVE) and legacy-n<i> (namespace legacy, not
// in the mesh). Service remote selects only echo-n1-p0, so a call to it from
// node 0 always crosses nodes.
func meshConfig(bin string) sandbox.MeshConfig {
	return sandbox.MeshConfig{
		Topology: sandbox.Topology{Name: "wfte2e", Nodes: 2, PodsPerNode: 3},
		BinDir:   bin,
		Namespaces: []sandbox.NamespaceSpec{
			{Name: "demo", Enrolled: true},
			{Name: "legacy"},
		},
		Pods: func(node, j int) sandbox.PodSpec {
			switch j {
			case 1:
				p := sandbox.DefaultPod(node, j)
				p.Annotations = map[string]string{"weftmesh.io/inbound": "permissive"}
				return p
			case 2:
				return sandbox.PodSpec{Namespace: "legacy", Name: fmt.Sprintf("legacy-n%d", node), Labels: map[string]string{"app": "legacy"}}
			default:
				return sandbox.DefaultPod(node, j)
			}
		},
		Services: append(sandbox.DefaultServices(),
			sandbox.ServiceSpec{Name: "remote", Selector: map[string]string{"pod": "echo-n1-p0"}, Ports: []sandbox.ServicePort{
				{Name: "http", Port: 80, TargetPort: sandbox.EchoHTTPPort, AppProtocol: "http"},
				{Name: "tcp-echo", Port: sandbox.EchoTCPPort},
			}},
			sandbox.ServiceSpec{Name: "legacy", Namespace: "legacy", Selector: map[string]string{"app": "legacy"}, Ports: []sandbox.ServicePort{
				{Name: "http", Port: sandbox.EchoHTTPPort, AppProtocol: "http"},
			}},
		),
	}
}

func TestMesh(t *testing.T) {
	ctx, m := upMesh(t, meshConfig)

	// The order matters: the restart comes last.
	t.Run("ServiceAcrossNodes", func(t *testing.T) { testServiceAcrossNodes(ctx, t, m) })
	t.Run("LinkCarriesOnlyTLS", func(t *testing.T) { testLinkCarriesOnlyTLS(ctx, t, m) })
	t.Run("TunnelRefusesForeignAndWrongIdentities", func(t *testing.T) { testTunnelRefusals(ctx, t, m) })
	t.Run("StrictAndPermissive", func(t *testing.T) { testStrictAndPermissive(ctx, t, m) })
	t.Run("AuthorizationDeny", func(t *testing.T) { testAuthorizationDeny(ctx, t, m) })
	t.Run("Passthrough", func(t *testing.T) { testPassthrough(ctx, t, m) })
	t.Run("NodeProxyRestart", func(t *testing.T) { testNodeProxyRestart(ctx, t, m) })
}

// upMesh skips (loudly) unless root, builds the binaries (the node proxy
// with the race detector: the data path is concurrent and only real
// traffic exercises all of it), brings up the mesh cfg describes, and
// registers its teardown, which fails the test on a race report and keeps
// the logs of a failed test. The context bounds the whole test.
func upMesh(t *testing.T, cfg func(bin string) sandbox.MeshConfig) (context.Context, *sandbox.Mesh) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING the end-to-end tests: they need root on Linux (network namespaces, nftables); running as uid %d", os.Geteuid())
	}
	bin := t.TempDir()
	if err := sandbox.BuildBinariesFlags(bin, []string{"-race"}, "weft-node-proxy"); err != nil {
		t.Fatal(err)
	}
	if err := sandbox.BuildBinaries(bin, "weft-control-plane", "weft-cni", "weft-echo"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	m, err := cfg(bin).Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if races := raceReports(m.LogDir()); races != "" {
			t.Errorf("the race detector reported in %s", races)
		}
		if t.Failed() {
			m.KeepLogs()
			t.Logf("logs kept in %s", m.LogDir())
		}
		if err := m.Down(); err != nil {
			t.Errorf("down: %v", err)
		}
	})
	return ctx, m
}

func pod(t *testing.T, m *sandbox.Mesh, name string) sandbox.MeshPod {
	t.Helper()
	p, ok := m.Pod(name)
	if !ok {
		t.Fatalf("no pod %s", name)
	}
	return p
}

// tcpEcho sends line over a TCP connection from pod to addr and returns
// what came back, or the error.
func tcpEcho(ctx context.Context, m *sandbox.Mesh, from, addr, line string) (string, error) {
	c, err := m.Dial(ctx, from, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func testServiceAcrossNodes(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	res, err := m.Get(ctx, "echo-n0-p0", "http://remote.demo/hello")
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || res.Reply == nil {
		t.Fatalf("GET remote.demo: status %d, reply %v; want 200 and a reply", res.Status, res.Reply)
	}
	if res.Reply.Pod != "echo-n1-p0" || res.Reply.Node != m.Nodes()[1].Name {
		t.Errorf("answered by %s on %s; want echo-n1-p0 on %s", res.Reply.Pod, res.Reply.Node, m.Nodes()[1].Name)
	}
	if res.Reply.Identity != echoID {
		t.Errorf("server saw identity %q; want %q", res.Reply.Identity, echoID)
	}

	// A forged identity header is replaced by the proven one.
	res, err = m.Do(ctx, "echo-n0-p0", echo.Request{URL: "http://remote.demo/forged", Header: http.Header{"X-Weft-Peer-Identity": {"spiffe://cluster.local/ns/kube-system/sa/admin"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reply == nil || res.Reply.Identity != echoID {
		t.Errorf("with a forged header the server saw %+v; want identity %q", res.Reply, echoID)
	}

	// Opaque TCP through the Service VIP.
	vip := m.ServiceIP("remote.demo")
	got, err := tcpEcho(ctx, m, "echo-n0-p0", netip.AddrPortFrom(vip, sandbox.EchoTCPPort).String(), "ping over tcp")
	if err != nil || !strings.Contains(got, "ping over tcp") {
		t.Errorf("TCP echo through %s: got %q, %v; want the line back", vip, got, err)
	}

	// The Service echo has pods on both nodes: both answer.
	seen := map[string]bool{}
	for range 8 {
		res, err := m.Get(ctx, "echo-n0-p0", "http://echo.demo:8080/")
		if err != nil {
			t.Fatal(err)
		}
		seen[res.Reply.Node] = true
	}
	if len(seen) != 2 {
		t.Errorf("8 calls to echo.demo reached nodes %v; want both", seen)
	}
}

func testLinkCarriesOnlyTLS(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	marker := "weft-secret-" + randHex(8)
	node0 := m.Nodes()[0]
	capt, err := startCapture(node0.NetNSPath, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Do(ctx, "echo-n0-p0", echo.Request{URL: "http://remote.demo/" + marker, Header: http.Header{"X-Marker": {marker}}})
	if err != nil || res.Status != 200 {
		capt.stop()
		t.Fatalf("GET with the marker: %v, %+v", err, res)
	}
	vip := m.ServiceIP("remote.demo")
	got, err := tcpEcho(ctx, m, "echo-n0-p0", netip.AddrPortFrom(vip, sandbox.EchoTCPPort).String(), marker)
	if err != nil || !strings.Contains(got, marker) {
		capt.stop()
		t.Fatalf("TCP echo with the marker: %q, %v", got, err)
	}
	time.Sleep(200 * time.Millisecond) // let the last frames arrive
	segs := capt.stop()

	tlsRecords := 0
	for _, s := range segs {
		if bytes.Contains(s.payload, []byte(marker)) {
			t.Errorf("plaintext on the node link: %s:%d -> %s:%d carries the marker", s.src, s.sport, s.dst, s.dport)
		}
		if s.sport == sandbox.EchoHTTPPort || s.dport == sandbox.EchoHTTPPort || s.sport == sandbox.EchoTCPPort || s.dport == sandbox.EchoTCPPort {
			t.Errorf("application port on the node link: %s:%d -> %s:%d", s.src, s.sport, s.dst, s.dport)
		}
		if (s.sport == 15008 || s.dport == 15008) && len(s.payload) >= 3 && s.payload[0] == 0x17 && s.payload[1] == 3 && s.payload[2] == 3 {
			tlsRecords++
		}
	}
	if tlsRecords == 0 {
		t.Errorf("captured %d TCP segments with payload on %s eth0, none a TLS application-data record on port 15008", len(segs), node0.Name)
	}
	t.Logf("captured %d segments with payload, %d TLS application-data records on 15008, no marker", len(segs), tlsRecords)
}

// meshCA loads the sandbox's CA, to issue certificates the mesh trusts.
func meshCA(t *testing.T, m *sandbox.Mesh) *certs.CA {
	t.Helper()
	mat, err := certs.DirStore{Dir: m.ControlPlaneStateDir()}.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.New(spiffeid.RequireTrustDomainFromString("cluster.local"), mat, certs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// connect opens an HBONE CONNECT from node 0's namespace (not captured) to
// pod's 15008 with the client certificate svid, asking for authority. It
// returns the response status, or the error when there was none.
func connect(ctx context.Context, t *testing.T, m *sandbox.Mesh, cert tls.Certificate, p sandbox.MeshPod, authority string) (int, error) {
	t.Helper()
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(m.TrustBundle())
	if err != nil {
		t.Fatal(err)
	}
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS13,
		// The server proves a SPIFFE ID, not a host name: check the chain only.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			inter := x509.NewCertPool()
			for _, r := range raw[1:] {
				if c, err := x509.ParseCertificate(r); err == nil {
					inter.AddCert(c)
				}
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		},
	}
	node0 := m.Nodes()[0].NetNSPath
	tr := &http2.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			raw, err := sandbox.Dial(ctx, node0, "tcp4", netip.AddrPortFrom(p.IP, 15008).String())
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, tc)
			if err := c.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
	}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Scheme: "https", Host: authority}, Host: authority, Header: http.Header{}, Body: pr}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func issue(t *testing.T, ca *certs.CA, id string) tls.Certificate {
	t.Helper()
	svid := certstest.SVID(t, ca, spiffeid.RequireFromString(id))
	var cert tls.Certificate
	for _, c := range svid.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	cert.PrivateKey = svid.PrivateKey
	return cert
}

func testTunnelRefusals(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	target := pod(t, m, "echo-n1-p0")
	authority := netip.AddrPortFrom(target.IP, sandbox.EchoTCPPort).String()
	ca := meshCA(t, m)

	// The control case: a workload certificate of the mesh is accepted.
	if code, err := connect(ctx, t, m, issue(t, ca, echoID), target, authority); err != nil || code != 200 {
		t.Fatalf("CONNECT with a valid workload certificate: %d, %v; want 200", code, err)
	}

	// A certificate from another CA, with the right identity.
	foreign, _ := certstest.NewCA(t, nil, certs.Options{})
	if code, err := connect(ctx, t, m, issue(t, foreign, echoID), target, authority); err == nil {
		t.Errorf("CONNECT with a foreign-CA certificate answered %d; want the handshake refused", code)
	} else {
		t.Logf("foreign CA refused: %v", err)
	}

	// Valid certificates with identities that may not open tunnels.
	for _, tc := range []struct{ name, id string }{
		{"node identity", "spiffe://cluster.local/weft/node/" + m.Nodes()[0].Name},
		{"control plane identity", "spiffe://cluster.local/weft/control-plane"},
	} {
		if code, err := connect(ctx, t, m, issue(t, ca, tc.id), target, authority); err != nil || code != http.StatusForbidden {
			t.Errorf("CONNECT as %s (%s): %d, %v; want 403", tc.name, tc.id, code, err)
		}
	}

	// An authority that is not this pod's.
	other := pod(t, m, "echo-n1-p1")
	if code, err := connect(ctx, t, m, issue(t, ca, echoID), target, netip.AddrPortFrom(other.IP, sandbox.EchoTCPPort).String()); err != nil || code != http.StatusBadRequest {
		t.Errorf("CONNECT to another pod's address: %d, %v; want 400", code, err)
	}

	// A workload identity the pod's AuthorizationPolicy does not allow.
	if err := m.Apply("60-allow.yaml", `apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: only-echo, namespace: demo}
spec:
  targetRefs: [{name: remote}]
  action: Allow
  rules:
  - from: [{identities: ["`+echoID+`"]}]
`); err != nil {
		t.Fatal(err)
	}
	defer m.Delete("60-allow.yaml")
	intruder := "spiffe://cluster.local/ns/demo/sa/intruder"
	eventually(t, 15*time.Second, "the intruder is refused with 403", func() error {
		code, err := connect(ctx, t, m, issue(t, ca, intruder), target, authority)
		if err != nil || code != http.StatusForbidden {
			return fmt.Errorf("CONNECT as %s: %d, %v", intruder, code, err)
		}
		return nil
	})
	if code, err := connect(ctx, t, m, issue(t, ca, echoID), target, authority); err != nil || code != 200 {
		t.Errorf("CONNECT as the allowed %s: %d, %v; want 200", echoID, code, err)
	}
}

func testStrictAndPermissive(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	strict, permissive := pod(t, m, "echo-n0-p0"), pod(t, m, "echo-n0-p1")
	// legacy-n1 is outside the mesh: its connections are plaintext.
	if res, err := m.Do(ctx, "legacy-n1", echo.Request{URL: fmt.Sprintf("http://%s:%d/", strict.IP, sandbox.EchoHTTPPort), Timeout: 3 * time.Second}); err == nil {
		t.Errorf("plaintext into the STRICT pod was answered: %d %+v; want it refused", res.Status, res.Reply)
	}
	res, err := m.Get(ctx, "legacy-n1", fmt.Sprintf("http://%s:%d/", permissive.IP, sandbox.EchoHTTPPort))
	if err != nil || res.Status != 200 || res.Reply.Pod != permissive.Name {
		t.Errorf("plaintext into the PERMISSIVE pod: %+v, %v; want 200 from %s", res, err, permissive.Name)
	}
	// Mesh traffic into the STRICT pod still works.
	res, err = m.Get(ctx, "echo-n1-p1", fmt.Sprintf("http://%s:%d/", strict.IP, sandbox.EchoHTTPPort))
	if err != nil || res.Status != 200 || res.Reply.Identity != echoID {
		t.Errorf("mesh call into the STRICT pod: %+v, %v; want 200 with identity %s", res, err, echoID)
	}
}

func testAuthorizationDeny(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	addr := netip.AddrPortFrom(m.ServiceIP("remote.demo"), sandbox.EchoTCPPort).String()
	if got, err := tcpEcho(ctx, m, "echo-n0-p0", addr, "before"); err != nil || !strings.Contains(got, "before") {
		t.Fatalf("TCP before the policy: %q, %v", got, err)
	}
	// A connection opened before the policy stays up (policies apply to
	// new connections).
	old, err := m.Dial(ctx, "echo-n0-p0", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldR := bufio.NewReader(old)
	if _, err := io.WriteString(old, "old 1\n"); err != nil {
		t.Fatal(err)
	}
	_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := oldR.ReadString('\n'); err != nil {
		t.Fatalf("old connection: %v", err)
	}

	if err := m.Apply("61-deny.yaml", fmt.Sprintf(`apiVersion: weftmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-tcp-from-demo, namespace: demo}
spec:
  targetRefs: [{name: remote}]
  action: Deny
  rules:
  - from: [{namespaces: [demo]}]
    to: [{ports: [%d]}]
`, sandbox.EchoTCPPort)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "new TCP connections are denied", func() error {
		if got, err := tcpEcho(ctx, m, "echo-n0-p0", addr, "after"); err == nil {
			return fmt.Errorf("TCP after the deny policy echoed %q", got)
		}
		return nil
	})
	// HTTP on the other port is not covered by the policy.
	if res, err := m.Get(ctx, "echo-n0-p0", "http://remote.demo/still-ok"); err != nil || res.Status != 200 {
		t.Errorf("HTTP on port 8080 after a deny on %d: %+v, %v; want 200", sandbox.EchoTCPPort, res, err)
	}
	if _, err := io.WriteString(old, "old 2\n"); err != nil {
		t.Errorf("the connection opened before the policy broke on write: %v", err)
	} else {
		_ = old.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := oldR.ReadString('\n'); err != nil {
			t.Errorf("the connection opened before the policy broke: %v", err)
		}
	}
	if err := m.Delete("61-deny.yaml"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "TCP works again once the policy is gone", func() error {
		got, err := tcpEcho(ctx, m, "echo-n0-p0", addr, "again")
		if err != nil || !strings.Contains(got, "again") {
			return fmt.Errorf("TCP: %q, %v", got, err)
		}
		return nil
	})
}

func testPassthrough(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	outside, client := pod(t, m, "legacy-n1"), pod(t, m, "echo-n0-p0")
	res, err := m.Get(ctx, client.Name, fmt.Sprintf("http://%s:%d/out", outside.IP, sandbox.EchoHTTPPort))
	if err != nil || res.Status != 200 || res.Reply.Pod != outside.Name {
		t.Fatalf("enrolled pod to a pod outside the mesh: %+v, %v; want 200 from %s", res, err, outside.Name)
	}
	if host, _, _ := net.SplitHostPort(res.Reply.Peer); host != client.IP.String() {
		t.Errorf("the destination saw the connection from %s; want the client pod's address %s", res.Reply.Peer, client.IP)
	}
	if res.Reply.Identity != "" {
		t.Errorf("a destination outside the mesh got identity %q; want none", res.Reply.Identity)
	}
}

func testNodeProxyRestart(ctx context.Context, t *testing.T, m *sandbox.Mesh) {
	outside := pod(t, m, "legacy-n1")
	outsideURL := fmt.Sprintf("http://%s:%d/while-down", outside.IP, sandbox.EchoHTTPPort)
	if err := m.StopNodeProxy(0); err != nil {
		t.Fatal(err)
	}
	capt, err := startCapture(m.Nodes()[0].NetNSPath, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://remote.demo/while-down", outsideURL} {
		if res, err := m.Do(ctx, "echo-n0-p0", echo.Request{URL: u, Timeout: 3 * time.Second}); err == nil {
			t.Errorf("with the node proxy down, %s was answered (%d): traffic left the pod unmeshed", u, res.Status)
		}
	}
	if _, err := tcpEcho(ctx, m, "echo-n0-p0", netip.AddrPortFrom(m.ServiceIP("remote.demo"), sandbox.EchoTCPPort).String(), "down"); err == nil {
		t.Errorf("with the node proxy down, a TCP connection went through")
	}
	time.Sleep(200 * time.Millisecond)
	client := pod(t, m, "echo-n0-p0")
	for _, s := range capt.stop() {
		if s.src.Equal(client.IP.AsSlice()) {
			t.Errorf("with the node proxy down, the pod sent %d bytes on the node link to %s:%d", len(s.payload), s.dst, s.dport)
		}
	}

	if err := m.StartNodeProxy(ctx, 0); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "traffic resumes after the restart", func() error {
		for _, u := range []string{"http://remote.demo/after", outsideURL} {
			res, err := m.Get(ctx, "echo-n0-p0", u)
			if err != nil || res.Status != 200 {
				return fmt.Errorf("GET %s: %+v, %v", u, res, err)
			}
		}
		return nil
	})
	res, err := m.Get(ctx, "echo-n0-p0", "http://remote.demo/identity")
	if err != nil || res.Reply.Identity != echoID {
		t.Errorf("after the restart: %+v, %v; want identity %s", res, err, echoID)
	}
}

// raceReports names the log files in dir that hold a race detector report.
func raceReports(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return ""
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			found = append(found, e.Name())
		}
	}
	return strings.Join(found, ", ")
}

// eventually retries fn until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
