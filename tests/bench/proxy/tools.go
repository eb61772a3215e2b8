//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// tools are the load generators' paths, and nginx's.
type tools struct {
	wrk, fortio, nginx string
}

// findTools returns wrk, fortio and, if needed, nginx, running
// hack/bench-tools.sh (which says what it installs) when one is missing
// and was not given.
func findTools(ctx context.Context, root, wrk, fortio string, needNginx bool) (tools, error) {
	look := func() tools {
		t := tools{wrk: wrk, fortio: fortio}
		if needNginx {
			t.nginx, _ = exec.LookPath("nginx")
			if _, err := os.Stat("/usr/sbin/nginx"); t.nginx == "" && err == nil {
				t.nginx = "/usr/sbin/nginx"
			}
		}
		if t.wrk == "" {
			t.wrk, _ = exec.LookPath("wrk")
		}
		if t.fortio == "" {
			t.fortio = filepath.Join(toolCache(), "fortio")
			if _, err := os.Stat(t.fortio); err != nil {
				t.fortio, _ = exec.LookPath("fortio")
			}
		}
		return t
	}
	t := look()
	if t.wrk == "" || t.fortio == "" || (needNginx && t.nginx == "") {
		logf("!!! wrk, fortio or nginx is missing: running hack/bench-tools.sh to install them")
		cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "bench-tools.sh"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return tools{}, fmt.Errorf("hack/bench-tools.sh: %w", err)
		}
		t = look()
	}
	need := map[string]string{"wrk": t.wrk, "fortio": t.fortio}
	if needNginx {
		need["nginx"] = t.nginx
	}
	for name, p := range need {
		if p == "" {
			return tools{}, fmt.Errorf("%s not found", name)
		}
		if _, err := os.Stat(p); err != nil {
			return tools{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	return t, nil
}

// toolCache is where hack/bench-tools.sh puts Go tools.
func toolCache() string {
	if d := os.Getenv("WEFT_CACHE"); d != "" {
		return filepath.Join(d, "tools")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "weft", "tools")
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/weftmesh/weft\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the weft repository (no go.mod of github.com/weftmesh/weft above the working directory)")
		}
		dir = parent
	}
}

func sh(ctx context.Context, dir string, argv ...string) string {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

// gitState records, before the binaries are built, the commit and the
// uncommitted changes under node-proxy/ and control-plane/.
func gitState(ctx context.Context, m *Meta, root string) {
	m.Commit = sh(ctx, root, "git", "rev-parse", "--short", "HEAD")
	m.Dirty = sh(ctx, root, "git", "status", "--porcelain", "--", "node-proxy", "control-plane")
}

// fillMeta describes the run, for the report.
func fillMeta(ctx context.Context, m *Meta, c config, t tools) {
	m.Date = time.Now().UTC().Format("2006-01-02 15:04 UTC")
	m.Command = strings.Join(os.Args, " ")
	m.Kernel = sh(ctx, "", "uname", "-r")
	m.CPUs = runtime.NumCPU()
	m.Go = runtime.Version()
	m.Wrk = t.wrk + " (" + firstLine(sh(ctx, "", t.wrk, "-v")) + ")"
	m.Fortio = t.fortio + " (" + sh(ctx, "", t.fortio, "version") + ")"
	if t.nginx != "" {
		m.Nginx = t.nginx + " (" + strings.TrimPrefix(sh(ctx, "", t.nginx, "-v"), "nginx version: ") + ")"
	}
	m.Backend = c.Backend
	m.Rounds, m.Duration, m.Conns, m.LatencyConns = c.Rounds, c.Duration.String(), c.Conns, c.LatencyConns
	m.BulkSize, m.BulkConns, m.ProxyLogLevel, m.ProfileSeconds = c.BulkSize, c.BulkConns, c.ProxyLogLevel, c.ProfileSeconds
	m.MaxNoise, m.Retries = c.MaxNoise, c.Retries
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvgEnd = strings.Join(strings.Fields(string(b))[:3], " ")
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
