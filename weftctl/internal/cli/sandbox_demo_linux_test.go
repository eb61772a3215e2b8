//go:build linux

package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/sandbox"
)

// TestSandboxDemo runs the whole walkthrough of `weftctl sandbox demo` on
// the real binaries and checks what it reports.
func TestSandboxDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skipf("!!! SKIPPING TestSandboxDemo: needs root on Linux: network namespaces (running as uid %d)", os.Geteuid())
	}
	bin := meshBinaries(t)
	const name = "wftdemo"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	err := runSandboxDemo(ctx, &out, sandboxDemoOptions{name: name, binDir: bin})
	text := out.String()
	if err != nil {
		t.Fatalf("sandbox demo: %v\n%s", err, text)
	}
	t.Logf("the demo took %s", time.Since(start).Round(time.Millisecond))

	for _, want := range []string{
		"caller identity (proven by mTLS): spiffe://cluster.local/ns/demo/sa/echo",
		"demo/echo-n0-p0  spiffe://cluster.local/ns/demo/sa/echo  STRICT",
		"demo/echo-n0-p1  spiffe://cluster.local/ns/demo/sa/echo  STRICT",
		"no mTLS) GET http://10.200.1.2:8080/  # pod echo-n1-p0\n  refused\n",
		"refused by policy",
		"200, allowed",
		"400 requests: 400×200 | pods: echo-n1-p0=400 |",
		"400 requests: 400×200 | pods: echo-n1-p1=400 |",
		"retries counted by node 0",
		"injected by node 0 (weft_proxy_faults_injected_total)",
		"Sandbox " + name + " is down.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("sandbox demo printed:\n%s\nwant %q", text, want)
		}
	}
	if !regexp.MustCompile(`\n +SERVER GET \[[^\n]*url.path=/second-hop`).MatchString(text) {
		t.Errorf("sandbox demo printed:\n%s\nwant the trace's SERVER span of /second-hop", text)
	}
	// Half of the requests fail without retries, almost none with them.
	got := regexp.MustCompile(`-> (\d+) of 400 succeeded, (\d+) failed`).FindAllStringSubmatch(text, -1)
	if len(got) != 2 {
		t.Fatalf("sandbox demo printed:\n%s\nwant two lines of retry results", text)
	}
	without, _ := strconv.Atoi(got[0][2])
	with, _ := strconv.Atoi(got[1][2])
	if without < 140 || without > 260 || with > 20 {
		t.Errorf("failed requests: %d without retries, %d with; want about 200, then at most 20", without, with)
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
}
