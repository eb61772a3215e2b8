//go:build linux

package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/tests/sandbox"
)

// The sandbox tests share one build of the mesh's programs.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// meshBinaries builds sandbox.MeshBinaries once for the package's tests
// and returns their directory.
func meshBinaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "weftctl-test-bin-"); binErr == nil {
			binErr = sandbox.BuildBinaries(binDir, sandbox.MeshBinaries...)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

// runningSandbox is `sandbox up` running in the background for a test.
type runningSandbox struct {
	name     string
	out      *signalWriter
	progress bytes.Buffer
	cancel   context.CancelFunc
	done     chan error
}

// startTestSandbox runs `sandbox up` with o (a random name with prefix) and waits
// until it says it is up. stop (also run at cleanup) ends it.
func startTestSandbox(t *testing.T, prefix string, o sandboxUpOptions) *runningSandbox {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	o.name = prefix + hex.EncodeToString(b)
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningSandbox{name: o.name, out: &signalWriter{marker: "Ctrl-C tears everything down", ready: make(chan struct{})},
		cancel: cancel, done: make(chan error, 1)}
	ready := s.out.ready
	go func() { s.done <- runSandboxUp(ctx, s.out, &s.progress, o) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("sandbox up: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-s.done:
		s.done <- err
		t.Fatalf("sandbox up: %v\n%s\n%s", err, s.out, &s.progress)
	case <-time.After(90 * time.Second):
		t.Fatalf("sandbox up: not up after 90s:\n%s\n%s", s.out, &s.progress)
	}
	return s
}

// stop cancels `sandbox up` (as Ctrl-C would) and returns its error; later
// calls return nil.
func (s *runningSandbox) stop() error {
	s.cancel()
	err, ok := <-s.done
	if ok {
		close(s.done)
	}
	return err
}
