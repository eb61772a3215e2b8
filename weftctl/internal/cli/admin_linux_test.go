//go:build linux

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/sandbox"
)

// TestAdminCommands runs status, proxy-config and identity against a
// sandbox with node proxies (the same code paths as on Kubernetes, where
// only the transport differs: a port-forward instead of a network
// namespace), then stops one node proxy and checks status reports it.
func TestAdminCommands(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING: needs root on Linux: network namespaces (running as uid %d)", os.Geteuid())
	}
	name := startTestSandbox(t, "wadm", sandboxUpOptions{nodes: 2, pods: 2, binDir: meshBinaries(t)}).name
	n0, n1 := name+"-n0", name+"-n1"
	run := func(args ...string) (string, int) {
		var o, e bytes.Buffer
		code := Main(append(args, "--sandbox", name), &o, &e)
		return o.String() + e.String(), code
	}
	mustHave := func(what, text string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(text, w) {
				t.Errorf("%s printed:\n%s\nwant %q", what, text, w)
			}
		}
	}

	t.Run("status", func(t *testing.T) {
		// Both node proxies have ACKed their configuration within a moment.
		var text string
		var code int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if text, code = run("status"); code == 0 && strings.Count(text, "SYNCED") == 2 {
				break
			}
		}
		if code != 0 {
			t.Errorf("status: exit %d:\n%s", code, text)
		}
		mustHave("status", text, "Control plane: sandbox "+name, "control-plane ("+n0+")  yes    2",
			n0+"  "+n0+"  yes    SYNCED", n1+"  "+n1+"  yes    SYNCED", "3, first expiry in 2",
			"Trust bundle (as the node proxies hold it)", "cluster.local: root \"Weft root CA cluster.local\", expires ")
	})

	t.Run("proxy-config", func(t *testing.T) {
		text, code := run("proxy-config", n0)
		if code != 0 {
			t.Fatalf("proxy-config: exit %d:\n%s", code, text)
		}
		mustHave("proxy-config", text,
			"control plane connected",
			"demo/echo-n0-p0  spiffe://cluster.local/ns/demo/sa/echo  10.200.0.2  STRICT",
			"demo/echo  10.96.0.10  8080/HTTP 9090/GRPC 7070/TCP",
			"echo.demo.svc.cluster.local:8080  default  prefix=/  outbound|8080||echo.demo.svc.cluster.local",
			"outbound|8080||echo.demo.svc.cluster.local  demo/echo:8080  p2c_peak_ewma",
			"10.200.1.3:8080  HEALTHY  demo/echo-n1-p1  "+n1+"  spiffe://cluster.local/ns/demo/sa/echo",
			"spiffe://cluster.local/weft/node/"+n0+"  -")
		if strings.Contains(text, "echo-n1-p0  spiffe") {
			t.Errorf("proxy-config %s lists node 1's pod as its workload:\n%s", n0, text)
		}

		text, code = run("proxy-config", n1, "endpoints", "-o", "json")
		var eps map[string]json.RawMessage
		if code != 0 || json.Unmarshal([]byte(text), &eps) != nil {
			t.Fatalf("proxy-config endpoints -o json: exit %d, not a JSON object:\n%s", code, text)
		}
		if _, ok := eps["outbound|8080||echo.demo.svc.cluster.local"]; !ok {
			t.Errorf("endpoints JSON has clusters %v, want outbound|8080||echo.demo.svc.cluster.local", slices.Sorted(mapsKeys(eps)))
		}

		for _, bad := range [][]string{
			{"proxy-config", "nowhere"},
			{"proxy-config", n0, "bogus"},
			{"proxy-config", n0, "-o", "json"},
		} {
			if text, code := run(bad...); code == 0 {
				t.Errorf("%v: exit 0, want an error:\n%s", bad, text)
			} else if !strings.Contains(text, "weftctl: ") {
				t.Errorf("%v: %q, want an error message", bad, text)
			}
		}
	})

	t.Run("identity", func(t *testing.T) {
		text, code := run("identity", "echo-n1-p0", "-n", "demo")
		if code != 0 {
			t.Fatalf("identity: exit %d:\n%s", code, text)
		}
		mustHave("identity", text, "Pod            demo/echo-n1-p0", "Node           "+n1,
			"SPIFFE ID      spiffe://cluster.local/ns/demo/sa/echo", "Inbound        STRICT", "Certificate    valid until")
		if text, code := run("identity", "echo-n1-p0", "-n", "other"); code == 0 || !strings.Contains(text, "not enrolled") {
			t.Errorf("identity in the wrong namespace: exit %d:\n%s", code, text)
		}
	})

	t.Run("node proxy down", func(t *testing.T) {
		// Kill node 1's proxy by the PID the sandbox recorded for it.
		pid := proxyPID(t, name, n1)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var text string
		var code int
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if text, code = run("status"); strings.Contains(text, n1+": not connected") {
				break
			}
		}
		if code == 0 {
			t.Errorf("status with a node proxy down: exit 0:\n%s", text)
		}
		mustHave("status", text, n1+"  "+n1+"  no", "DISCONNECTED", n1+": not connected to any control plane replica", "problem(s)")
	})

	var o, e bytes.Buffer
	if code := Main([]string{"status", "--sandbox", "nosuchbox"}, &o, &e); code == 0 || !strings.Contains(e.String(), `no sandbox "nosuchbox" is running`) {
		t.Errorf("status --sandbox nosuchbox: exit %d: %s%s", code, &o, &e)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// proxyPID is the PID the sandbox state file records for node's proxy.
func proxyPID(t *testing.T, name, node string) int {
	t.Helper()
	b, err := os.ReadFile(sandbox.StateDir + "/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Processes []struct {
			PID  int      `json:"pid"`
			Argv []string `json:"argv"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Processes {
		if strings.HasSuffix(p.Argv[0], "weft-node-proxy") && slices.Contains(p.Argv, node) {
			return p.PID
		}
	}
	t.Fatalf("no node proxy process for %s in the sandbox state: %+v", node, st.Processes)
	return 0
}
