//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The binaries a mesh runs, built once per test process by binaries: `go
// test` does not run `make build`, and bin/ may be stale or missing.
var (
	binMu  sync.Mutex // guards the fields below
	binDir string
	built  = map[string]bool{}
)

// binaries builds the named binaries (those not built yet) into a
// temporary directory that TestMain removes, and returns it.
func binaries(t *testing.T, names ...string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		d, err := os.MkdirTemp("", "weft-sandbox-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	var todo []string
	for _, name := range names {
		if !built[name] {
			todo = append(todo, name)
		}
	}
	if err := BuildBinaries(binDir, todo...); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		built[name] = true
	}
	return binDir
}

func removeBinaries() {
	binMu.Lock()
	defer binMu.Unlock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

// upMesh builds a mesh for t and tears it down at the end, keeping the
// logs if t failed.
func upMesh(t *testing.T, cfg MeshConfig) *Mesh {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := cfg.Up(ctx)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			m.KeepLogs()
			t.Logf("mesh logs kept in %s", m.LogDir())
		}
		if err := m.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return m
}

func TestMeshMissingBinary(t *testing.T) {
	dir := t.TempDir()
	_, err := MeshConfig{Topology: Topology{Name: uniqueName(t, "wsb"), Nodes: 1}, BinDir: dir}.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "weft-control-plane")) || !strings.Contains(err.Error(), "make build") {
		t.Errorf("Up without binaries: got %v, want an error naming %s/weft-control-plane and `make build`", err, dir)
	}
}

// TestMesh runs the mesh layer without node proxies: the control plane,
// the apps, the config dir, names, and the teardown.
func TestMesh(t *testing.T) {
	requireRoot(t)
	bin := binaries(t, "weft-control-plane", "weft-echo", "weft-cni", "weftctl")
	name := uniqueName(t, "wsm")
	m := upMesh(t, MeshConfig{
		Topology:      Topology{Name: name, Nodes: 2, PodsPerNode: 2},
		BinDir:        bin,
		NoNodeProxies: true,
		Namespaces:    []NamespaceSpec{{Name: "demo", Enrolled: true}, {Name: "legacy"}},
		Pods: func(i, j int) PodSpec {
			if i == 1 && j == 1 {
				return PodSpec{Namespace: "legacy", Name: "web", Labels: map[string]string{"app": "web"}}
			}
			return DefaultPod(i, j)
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	node1 := m.Nodes()[1]

	t.Run("echo answers pod to pod by IP", func(t *testing.T) {
		for _, tc := range []struct{ from, to string }{
			{"echo-n0-p0", "echo-n1-p0"}, // across nodes
			{"web", "echo-n0-p1"},        // from the other namespace
			{"echo-n0-p1", "echo-n0-p0"}, // same node
		} {
			from, _ := m.Pod(tc.from)
			to, _ := m.Pod(tc.to)
			res, err := m.Get(ctx, tc.from, fmt.Sprintf("http://%s:%d/hello", to.IP, EchoHTTPPort))
			if err != nil {
				t.Fatalf("%s -> %s: %v", tc.from, tc.to, err)
			}
			if res.Status != 200 || res.Reply == nil {
				t.Fatalf("%s -> %s: got %+v, want 200 from weft-echo", tc.from, tc.to, res)
			}
			r := res.Reply
			if r.Pod != to.Name || r.Namespace != to.Namespace || r.Node != to.Node || r.Path != "/hello" {
				t.Errorf("%s -> %s: got reply from %s/%s on %s for %s, want %s/%s on %s for /hello",
					tc.from, tc.to, r.Namespace, r.Pod, r.Node, r.Path, to.Namespace, to.Name, to.Node)
			}
			if host, _, _ := net.SplitHostPort(r.Peer); host != from.IP.String() {
				t.Errorf("%s -> %s: server saw peer %s, want %s", tc.from, tc.to, r.Peer, from.IP)
			}
		}
		// The TCP port echoes too.
		to, _ := m.Pod("echo-n1-p0")
		c, err := m.Dial(ctx, "echo-n0-p0", fmt.Sprintf("%s:%d", to.IP, EchoTCPPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, "ping\n")
		buf := make([]byte, 5)
		if _, err := c.Read(buf); err != nil || string(buf) != "ping\n" {
			t.Errorf("tcp echo: got %q, %v; want ping", buf, err)
		}
	})

	t.Run("service names resolve in pods", func(t *testing.T) {
		names := []string{"echo", "echo.demo", "echo.demo.svc", "echo.demo.svc.cluster.local"}
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		web, _ := m.Pod("web")
		p, err := m.Sandbox().Start(web.NetNSPath, []string{exe}, append(os.Environ(), helperEnv+"=1", helperHostsEnv+"="+strings.Join(names, ",")))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("helper: %v: %s", err, p.Output())
		}
		for _, n := range names {
			if want := fmt.Sprintf("resolved %s 10.96.0.10\n", n); !strings.Contains(string(p.Output()), want) {
				t.Errorf("helper in web printed %q, want a line %q", p.Output(), want)
			}
		}
		if got := m.ServiceIP("echo.demo").String(); got != "10.96.0.10" {
			t.Errorf("ServiceIP(echo.demo): got %s, want 10.96.0.10", got)
		}
	})

	// requestSVIDs runs `weftctl certs request-svid` on node 1, as its
	// node proxy would: the join token, the trust bundle and the control
	// plane's address across the underlay all have to be right.
	requestSVIDs := func(pods ...string) (string, error) {
		argv := []string{filepath.Join(bin, "weftctl"), "certs", "request-svid", "--control-plane", m.ControlPlane().String(),
			"--node", node1.Name, "--join-token-file", m.JoinTokenFile(1), "--trust-bundle", m.TrustBundle()}
		for _, p := range pods {
			argv = append(argv, "--pod", p)
		}
		out, err := m.Sandbox().Exec(ctx, node1.NetNSPath, argv...)
		return string(out), err
	}

	t.Run("control plane serves the config dir", func(t *testing.T) {
		body, err := m.ControlPlaneAdminGet(ctx, "/readyz")
		if err != nil || string(body) != "ok\n" {
			t.Errorf("/readyz: got %q, %v; want ok", body, err)
		}
		out, err := requestSVIDs("demo/echo-n1-p0", "legacy/web", "demo/echo-n0-p0")
		if err == nil {
			t.Errorf("request-svid: got no error, want two refusals")
		}
		for _, want := range []string{
			"✔ " + node1.Name + " bootstrapped with its join token",
			"✔ " + node1.Name + " got an SVID for pod demo/echo-n1-p0",
			"✘ " + node1.Name + " was refused an SVID for pod legacy/web",      // namespace not enrolled
			"✘ " + node1.Name + " was refused an SVID for pod demo/echo-n0-p0", // another node's pod
		} {
			if !strings.Contains(out, want) {
				t.Errorf("request-svid printed:\n%s\nwant a line %q", out, want)
			}
		}
	})

	t.Run("Apply and Delete change the config dir", func(t *testing.T) {
		late := `apiVersion: v1
kind: Pod
metadata: {name: late, namespace: demo}
spec: {nodeName: ` + node1.Name + `, serviceAccountName: echo}
status: {podIP: 10.200.1.99}
`
		if err := m.Apply("30-late.yaml", late); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(m.ConfigDir(), "30-late.yaml")); err != nil || string(b) != late {
			t.Fatalf("30-late.yaml: got %q, %v", b, err)
		}
		eventually(t, ctx, "the control plane knows pod demo/late", func() error {
			out, err := requestSVIDs("demo/late")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})

		if err := m.Apply("40-bad.yaml", "kind: [\n"); err != nil {
			t.Fatal(err)
		}
		eventually(t, ctx, "/readyz reports the bad file", func() error {
			body, err := m.ControlPlaneAdminGet(ctx, "/readyz")
			if err != nil || !strings.Contains(string(body), "config dir has errors") || !strings.Contains(string(body), "40-bad.yaml") {
				return fmt.Errorf("/readyz: %q, %v", body, err)
			}
			return nil
		})
		for _, f := range []string{"40-bad.yaml", "30-late.yaml", "99-never-written.yaml"} {
			if err := m.Delete(f); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, ctx, "/readyz is ok again", func() error {
			body, err := m.ControlPlaneAdminGet(ctx, "/readyz")
			if err != nil || string(body) != "ok\n" {
				return fmt.Errorf("/readyz: %q, %v", body, err)
			}
			return nil
		})
		for _, bad := range []string{"../x.yaml", "x.txt", ".hidden.yaml", "a/b.yaml"} {
			if err := m.Apply(bad, ""); err == nil {
				t.Errorf("Apply(%q): got no error, want one", bad)
			}
		}
	})

	t.Run("CNI fails closed without a node proxy", func(t *testing.T) {
		// The plugin parses what the harness gives it, then finds no node
		// proxy on the socket: the pod must not start unmeshed.
		out, err := m.CNI(ctx, "ADD", "echo-n0-p0")
		if err == nil || !strings.Contains(string(out), "refusing to start the pod unmeshed") {
			t.Errorf("CNI ADD: got %s, %v; want a refusal to start the pod unmeshed", out, err)
		}
		if _, err := m.CNI(ctx, "DEL", "echo-n0-p0"); err != nil {
			t.Errorf("CNI DEL: got %v, want success (DEL never fails)", err)
		}
	})

	t.Run("StopEcho and StartEcho", func(t *testing.T) {
		to, _ := m.Pod("echo-n1-p0")
		url := fmt.Sprintf("http://%s:%d/", to.IP, EchoHTTPPort)
		if err := m.StopEcho(to.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Get(ctx, "echo-n0-p0", url); err == nil {
			t.Errorf("GET with weft-echo stopped: got no error, want connection refused")
		}
		if err := m.StartEcho(ctx, to.Name); err != nil {
			t.Fatal(err)
		}
		if res, err := m.Get(ctx, "echo-n0-p0", url); err != nil || res.Status != 200 {
			t.Errorf("GET after StartEcho: got %+v, %v; want 200", res, err)
		}
	})

	t.Run("Down leaves nothing", func(t *testing.T) {
		m.mu.Lock()
		procs := []*Process{m.run.cp}
		for _, p := range m.run.echoes {
			procs = append(procs, p)
		}
		m.mu.Unlock()
		if len(procs) != 5 {
			t.Fatalf("got %d processes, want the control plane and 4 weft-echo", len(procs))
		}
		logs := m.LogDir()
		if t.Failed() {
			m.KeepLogs()
			t.Logf("mesh logs kept in %s", logs)
		}
		if err := m.Down(); err != nil {
			t.Fatalf("Down: %v", err)
		}
		for _, p := range procs {
			if err := unix.Kill(p.PID, 0); !errors.Is(err, unix.ESRCH) {
				t.Errorf("process %d (%s) still exists after Down: %v", p.PID, p.Cmd.Path, err)
			}
		}
		checkGone(t, name)
		if _, err := os.Stat(logs); !m.keepLogs && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("log dir %s: got %v, want it gone", logs, err)
		}
		if err := m.Down(); err != nil {
			t.Errorf("second Down: %v", err)
		}
	})
	checkThreads(t)
}

// TestMeshCleanupAfterCrash drops a mesh without Down, as a crash would,
// and checks that Cleanup (which Up also runs first) removes everything.
func TestMeshCleanupAfterCrash(t *testing.T) {
	requireRoot(t)
	bin := binaries(t, "weft-control-plane", "weft-echo")
	name := uniqueName(t, "wsk")
	logs := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m, err := MeshConfig{Topology: Topology{Name: name, Nodes: 1, PodsPerNode: 1}, BinDir: bin, NoNodeProxies: true, LogDir: logs}.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	pids := []int{m.run.cp.PID}
	for _, p := range m.run.echoes {
		pids = append(pids, p.PID)
	}
	m.mu.Unlock()
	// The crash: a dead harness writes no more state and never calls Down.
	m.run.sb.mu.Lock()
	m.run.sb.down = true
	m.run.sb.mu.Unlock()
	m = nil

	if err := Cleanup(name); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, pid := range pids {
		// Cleanup killed them; this process is their parent and reaps
		// them in Process.wait.
		deadline := time.Now().Add(5 * time.Second)
		for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			t.Errorf("process %d still exists after Cleanup: %v", pid, err)
		}
	}
	checkGone(t, name)
	if _, err := os.Stat(filepath.Join(logs, "control-plane.log")); err != nil {
		t.Errorf("a given LogDir is never deleted: %v", err)
	}
}

// eventually polls check every 100ms until it succeeds or ctx ends.
func eventually(t *testing.T, ctx context.Context, what string, check func() error) {
	t.Helper()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the deadline: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
