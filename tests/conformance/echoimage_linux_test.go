//go:build linux

package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftmesh/weft/tests/cluster/images"
)

// echoRepo is the repository of the echo-advanced image built here; its
// tag is the Istio module version it holds.
const echoRepo = "weft/gateway-echo-advanced"

// istioModule is the module holding the echo programs and the test
// certificate the suite's manifests name (--crt=/cert.crt --key=/cert.key).
const istioModule = "istio.io/istio"

// buildEchoImage builds Istio's echo server and client from the module in
// echoDir (CGO_ENABLED=0: the image has no libc) and packs them into an
// image tarball in outDir: /usr/local/bin/server (the entrypoint),
// /usr/local/bin/client (the suite execs it), /cert.crt and /cert.key.
// It returns the image reference and the tarball.
func buildEchoImage(ctx context.Context, echoDir, outDir string) (ref, tarball string, err error) {
	goCmd := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = echoDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOTOOLCHAIN=local")
		return cmd
	}
	out, err := goCmd("list", "-m", "-f", "{{.Version}} {{.Dir}}", istioModule).Output()
	if err != nil {
		return "", "", fmt.Errorf("go list -m %s: %w", istioModule, err)
	}
	version, modDir, ok := strings.Cut(strings.TrimSpace(string(out)), " ")
	if !ok || modDir == "" {
		// Not in the module cache yet: the build below downloads it.
		version = strings.TrimSpace(string(out))
	}
	binDir := filepath.Join(outDir, "echo-bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", "", err
	}
	build := goCmd("build", "-trimpath", "-ldflags=-s -w", "-o", binDir+"/",
		istioModule+"/pkg/test/echo/cmd/server", istioModule+"/pkg/test/echo/cmd/client")
	if b, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build the echo server and client: %w\n%s", err, b)
	}
	if modDir == "" {
		if out, err = goCmd("list", "-m", "-f", "{{.Dir}}", istioModule).Output(); err != nil {
			return "", "", fmt.Errorf("go list -m %s: %w", istioModule, err)
		}
		modDir = strings.TrimSpace(string(out))
	}
	certs := filepath.Join(modDir, "tests", "testdata", "certs", "dns")
	ref = echoRepo + ":" + version
	tarball = filepath.Join(outDir, "gateway-echo-advanced.tar")
	spec := images.Spec{
		Ref:        ref,
		Entrypoint: []string{images.BinDir + "/server"},
		Files: []images.File{
			{Path: images.BinDir + "/server", Source: filepath.Join(binDir, "server")},
			{Path: images.BinDir + "/client", Source: filepath.Join(binDir, "client")},
			{Path: "/cert.crt", Source: filepath.Join(certs, "cert-chain.pem"), Mode: 0o644},
			{Path: "/cert.key", Source: filepath.Join(certs, "key.pem"), Mode: 0o644},
		},
	}
	if err := images.Pack(spec, tarball); err != nil {
		return "", "", err
	}
	return ref, tarball, nil
}

// since is a duration rounded for logs.
func since(t0 time.Time) time.Duration { return time.Since(t0).Round(100 * time.Millisecond) }
