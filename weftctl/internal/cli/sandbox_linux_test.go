//go:build linux

package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/weftmesh/weft/tests/apps/echo"
	"github.com/weftmesh/weft/tests/sandbox"
)

// signalWriter is a buffer that closes ready once it holds marker.
type signalWriter struct {
	mu     sync.Mutex // guards the fields below
	buf    bytes.Buffer
	marker string
	ready  chan struct{}
}

func (w *signalWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, _ := w.buf.Write(b)
	if w.ready != nil && strings.Contains(w.buf.String(), w.marker) {
		close(w.ready)
		w.ready = nil
	}
	return n, nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestSandboxUp runs `weftctl sandbox up` without node proxies, runs the
// command it suggests, and stops it as Ctrl-C would.
func TestSandboxUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING: needs root on Linux: network namespaces (running as uid %d)", os.Geteuid())
	}
	s := startTestSandbox(t, "wcli", sandboxUpOptions{nodes: 2, pods: 1, binDir: meshBinaries(t), noNodeProxies: true})
	name, out := s.name, s.out
	text := out.String()
	for _, want := range []string{
		"echo-n0-p0  demo       " + name + "-n0  10.200.0.2  yes       " + name + "-n0-p0",
		"echo.demo  10.96.0.10  http 8080 (http), grpc 9090 (grpc), tcp-echo 7070",
		"Config dir: /run/weft-sandbox/" + name + "/config",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("sandbox up printed:\n%s\nwant a line with %q", text, want)
		}
	}

	// The suggested command to reach another pod works as printed.
	var try string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "ip netns exec") && strings.Contains(line, "10.200.1.2:8080") {
			try = strings.TrimSpace(line)
		}
	}
	if try == "" {
		t.Fatalf("sandbox up printed no command to reach 10.200.1.2:8080:\n%s", text)
	}
	argv := strings.Fields(try)
	res, err := exec.Command(argv[0], argv[1:]...).Output()
	var r echo.Result
	if err != nil || json.Unmarshal(res, &r) != nil || r.Reply == nil || r.Reply.Pod != "echo-n1-p0" {
		t.Errorf("%s: got %s, %v; want a reply from echo-n1-p0", try, res, err)
	}

	if err := s.stop(); err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	if !strings.Contains(out.String(), "Sandbox "+name+" is down.") {
		t.Errorf("sandbox up printed:\n%s\nwant it to say it is down", out)
	}
	entries, _ := os.ReadDir(sandbox.RunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), name+"-") {
			t.Errorf("left in %s: %s", sandbox.RunDir, e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(sandbox.StateDir, name)); !os.IsNotExist(err) {
		t.Errorf("%s/%s: got %v, want it gone", sandbox.StateDir, name, err)
	}

	// down after a clean exit has nothing to do.
	var downOut, downErr bytes.Buffer
	if code := Main([]string{"sandbox", "down", "--name", name}, &downOut, &downErr); code != 0 || !strings.Contains(downOut.String(), "cleaned up") {
		t.Errorf("sandbox down: exit %d, %q %q", code, &downOut, &downErr)
	}
	if code := Main([]string{"sandbox", "down", "--name", "Bad-Name"}, &downOut, &downErr); code == 0 {
		t.Errorf("sandbox down --name Bad-Name: exit 0, want an error")
	}
}
