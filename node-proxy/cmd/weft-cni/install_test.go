package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// flannelConflist is a typical conflist as flannel writes it on containerd
// nodes.
const flannelConflist = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}
`

const testSocket = "/var/run/weft/node-proxy.sock"

// syncBuffer is a bytes.Buffer safe for a watching installer and a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newInstaller returns an installer on fresh temp dirs, copying a small
// fake executable, with entry {"type":"weft-cni","socketPath":testSocket}.
func newInstaller(t *testing.T) (*installer, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	in := &installer{
		binDir:   filepath.Join(dir, "bin"),
		confDir:  filepath.Join(dir, "net.d"),
		self:     filepath.Join(dir, "self"),
		interval: 10 * time.Millisecond,
	}
	log := &syncBuffer{}
	in.log = log
	for _, d := range []string{in.binDir, in.confDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(in.self, []byte("#!/bin/false\nweft-cni\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	entry, err := pluginEntry(`{"socketPath":"` + testSocket + `"}`)
	if err != nil {
		t.Fatal(err)
	}
	in.entry = entry
	return in, log
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func decode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, data)
}

// withWeft returns conflist (JSON) with entry appended to its plugins.
func withWeft(t *testing.T, conflist string, entry map[string]any) map[string]any {
	t.Helper()
	v := decode(t, []byte(conflist))
	v["plugins"] = append(v["plugins"].([]any), entry)
	return v
}

var weftEntry = map[string]any{"type": "weft-cni", "socketPath": testSocket}

func TestInstallFlannelConflist(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	writeFile(t, conf, flannelConflist, 0o640)
	writeFile(t, filepath.Join(in.confDir, "99-loopback.conflist"), `{"name":"lo","plugins":[{"type":"loopback"}]}`, 0o644)
	if err := in.install(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withWeft(t, flannelConflist, weftEntry), readJSON(t, conf)); diff != "" {
		t.Errorf("conflist (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(conf)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("conflist mode %v, want 0640 (kept)", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(conf)
	if !strings.Contains(string(data), `{
      "type": "weft-cni",
      "socketPath": "/var/run/weft/node-proxy.sock"
    }`) {
		t.Errorf("weft-cni entry not written type first:\n%s", data)
	}
	if keys := strings.Index(string(data), `"name"`) < strings.Index(string(data), `"cniVersion"`); !keys {
		t.Errorf("top-level member order not kept:\n%s", data)
	}
	// Only the primary (lexically first) file is touched.
	if got := readJSON(t, filepath.Join(in.confDir, "99-loopback.conflist")); len(got["plugins"].([]any)) != 1 {
		t.Errorf("99-loopback.conflist changed: %v", got)
	}
	bin := filepath.Join(in.binDir, "weft-cni")
	fi, err = os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("binary mode %v, want 0755", fi.Mode().Perm())
	}
	got, _ := os.ReadFile(bin)
	want, _ := os.ReadFile(in.self)
	if !bytes.Equal(got, want) {
		t.Errorf("binary content %q, want %q", got, want)
	}
	if tmps, _ := filepath.Glob(filepath.Join(in.confDir, ".*")); len(tmps) > 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

func TestInstallIdempotent(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	writeFile(t, conf, flannelConflist, 0o644)
	if err := in.install(); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(conf)
	fi1, _ := os.Stat(conf)
	for range 3 {
		changed, err := in.installEntry()
		if err != nil {
			t.Fatal(err)
		}
		if changed {
			t.Error("installEntry rewrote a conflist that already had the entry")
		}
	}
	after, _ := os.ReadFile(conf)
	fi2, _ := os.Stat(conf)
	if !bytes.Equal(before, after) || !os.SameFile(fi1, fi2) {
		t.Errorf("conflist rewritten:\n%s\n->\n%s", before, after)
	}
}

func TestInstallUpdatesInPlace(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	// weft-cni before portmap with an old socket, and a duplicate at the end.
	writeFile(t, conf, `{"cniVersion":"1.0.0","name":"k8s","plugins":[
		{"type":"flannel"},
		{"type":"weft-cni","socketPath":"/old.sock","failOpen":true},
		{"type":"portmap","capabilities":{"portMappings":true}},
		{"type":"weft-cni"}]}`, 0o644)
	changed, err := in.installEntry()
	if err != nil || !changed {
		t.Fatalf("installEntry = %v, %v; want true, nil", changed, err)
	}
	want := decode(t, []byte(`{"cniVersion":"1.0.0","name":"k8s","plugins":[
		{"type":"flannel"},
		{"type":"weft-cni","socketPath":"/var/run/weft/node-proxy.sock"},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`))
	if diff := cmp.Diff(want, readJSON(t, conf)); diff != "" {
		t.Errorf("conflist (-want +got):\n%s", diff)
	}
}

func TestUninstallRestores(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	other := filepath.Join(in.confDir, "20-other.conflist")
	writeFile(t, conf, flannelConflist, 0o600)
	writeFile(t, other, `{"name":"x","plugins":[{"type":"weft-cni"},{"type":"bridge"}]}`, 0o644)
	garbage := filepath.Join(in.confDir, "30-garbage.conflist")
	writeFile(t, garbage, `{not json`, 0o644)
	if err := in.install(); err != nil {
		t.Fatal(err)
	}
	if err := in.uninstall(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(decode(t, []byte(flannelConflist)), readJSON(t, conf)); diff != "" {
		t.Errorf("conflist after uninstall (-want +got):\n%s", diff)
	}
	if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o600 {
		t.Errorf("conflist mode %v, want 0600 (kept)", fi.Mode().Perm())
	}
	if diff := cmp.Diff(decode(t, []byte(`{"name":"x","plugins":[{"type":"bridge"}]}`)), readJSON(t, other)); diff != "" {
		t.Errorf("other conflist after uninstall (-want +got):\n%s", diff)
	}
	if data, _ := os.ReadFile(garbage); string(data) != `{not json` {
		t.Errorf("unparsable file changed: %q", data)
	}
	if _, err := os.Stat(filepath.Join(in.binDir, "weft-cni")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("binary still there: %v", err)
	}
	// Again: nothing left to do, no error.
	if err := in.uninstall(); err != nil {
		t.Errorf("second uninstall: %v", err)
	}
}

func TestInstallRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file, data, wantErr string
	}{
		{"bad JSON", "10-flannel.conflist", `{"name":"cbr0","plugins":[{"type":"flannel"},]}`, "not valid JSON"},
		{"not an object", "10-flannel.conflist", `[{"type":"flannel"}]`, "not a JSON object"},
		{"plugins not a list", "10-flannel.conflist", `{"name":"cbr0","plugins":{"type":"flannel"}}`, `"plugins": not a list`},
		{"single .conf", "10-bridge.conf", `{"cniVersion":"0.4.0","name":"b","type":"bridge"}`, "convert it to a .conflist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := newInstaller(t)
			path := filepath.Join(in.confDir, tc.file)
			writeFile(t, path, tc.data, 0o644)
			err := in.install()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("install: %v; want an error about %s with %q", err, path, tc.wantErr)
			}
			if data, _ := os.ReadFile(path); string(data) != tc.data {
				t.Errorf("file changed: %s", data)
			}
			if ents, _ := os.ReadDir(in.confDir); len(ents) != 1 {
				t.Errorf("conf dir holds %d files, want 1", len(ents))
			}
		})
	}
}

func TestInstallConfSortedAfterConflist(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	writeFile(t, conf, flannelConflist, 0o644)
	writeFile(t, filepath.Join(in.confDir, "99-loopback.conf"), `{"name":"lo","type":"loopback"}`, 0o644)
	writeFile(t, filepath.Join(in.confDir, "00-notes.txt"), `not a config`, 0o644)
	if err := in.install(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withWeft(t, flannelConflist, weftEntry), readJSON(t, conf)); diff != "" {
		t.Errorf("conflist (-want +got):\n%s", diff)
	}
}

func TestInstallNoConfig(t *testing.T) {
	in, _ := newInstaller(t)
	if err := in.install(); !errors.Is(err, errNoConfig) {
		t.Errorf("install in an empty conf dir: %v, want errNoConfig", err)
	}
}

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func hasWeft(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	c, err := parseConfList(data)
	if err != nil {
		return false
	}
	for _, p := range c.plugins {
		if pluginTypeOf(p) == pluginType {
			return true
		}
	}
	return false
}

func TestWatch(t *testing.T) {
	in, log := newInstaller(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.watch(ctx, false) }()

	// No conflist yet: it waits, then installs once the CNI writes one.
	bin := filepath.Join(in.binDir, "weft-cni")
	eventually(t, "the binary", func() bool { _, err := os.Stat(bin); return err == nil })
	eventually(t, "the waiting message", func() bool { return strings.Contains(log.String(), "waiting for the cluster's CNI") })
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	writeFile(t, conf, flannelConflist, 0o644)
	eventually(t, "the entry", func() bool { return hasWeft(conf) })

	// The CNI rewrites its conflist (via a rename, as installers do).
	tmp := filepath.Join(in.confDir, "rewrite.tmp")
	writeFile(t, tmp, flannelConflist, 0o644)
	if err := os.Rename(tmp, conf); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entry re-added", func() bool { return hasWeft(conf) })

	// Broken for a while, then fixed.
	writeFile(t, conf, `{broken`, 0o644)
	eventually(t, "the failure logged", func() bool { return strings.Contains(log.String(), "install failed") })
	writeFile(t, conf, flannelConflist, 0o644)
	eventually(t, "the entry after the fix", func() bool { return hasWeft(conf) })

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the binary copied again", func() bool { _, err := os.Stat(bin); return err == nil })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop")
	}
	if !hasWeft(conf) {
		t.Error("entry removed on exit without uninstall-on-exit")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Error("binary removed on exit without uninstall-on-exit")
	}
}

// runCLI runs the built weft-cni with args and no CNI_COMMAND.
func runCLI(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	cmd := exec.Command(pluginBin, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), errb.String()
}

func TestCLIInstallUninstall(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	writeFile(t, conf, flannelConflist, 0o644)
	dirs := []string{"--cni-bin-dir=" + in.binDir, "--cni-conf-dir=" + in.confDir}
	code, stderr := runCLI(t, append([]string{"install", `--plugin-config={"socketPath":"/run/w.sock","failOpen":true}`}, dirs...)...)
	if code != 0 {
		t.Fatalf("install: exit %d: %s", code, stderr)
	}
	want := map[string]any{"type": "weft-cni", "socketPath": "/run/w.sock", "failOpen": true}
	if diff := cmp.Diff(withWeft(t, flannelConflist, want), readJSON(t, conf)); diff != "" {
		t.Errorf("conflist (-want +got):\n%s", diff)
	}
	got, _ := os.ReadFile(filepath.Join(in.binDir, "weft-cni"))
	self, _ := os.ReadFile(pluginBin)
	if !bytes.Equal(got, self) {
		t.Error("installed binary differs from weft-cni")
	}
	if code, stderr := runCLI(t, append([]string{"uninstall"}, dirs...)...); code != 0 {
		t.Fatalf("uninstall: exit %d: %s", code, stderr)
	}
	if diff := cmp.Diff(decode(t, []byte(flannelConflist)), readJSON(t, conf)); diff != "" {
		t.Errorf("conflist after uninstall (-want +got):\n%s", diff)
	}
}

func TestCLIErrors(t *testing.T) {
	in, _ := newInstaller(t)
	conf := filepath.Join(in.confDir, "10-flannel.conflist")
	writeFile(t, conf, flannelConflist, 0o644)
	dirs := []string{"--cni-bin-dir=" + in.binDir, "--cni-conf-dir=" + in.confDir}
	for _, tc := range []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"install", "--plugin-config=[1]"}, 1, "not a JSON object"},
		{[]string{"install", `--plugin-config={"socketPath":"relative.sock"}`}, 1, "must be absolute"},
		{[]string{"install", `--plugin-config={"type":"bridge"}`}, 1, `must be "weft-cni"`},
		{[]string{"install", "--uninstall-on-exit"}, 2, "needs --watch"},
		{[]string{"install", "--no-such-flag"}, 2, "not defined"},
		{[]string{"uninstall", "--watch"}, 2, "not defined"},
		{[]string{"install", "extra"}, 2, "unexpected arguments"},
	} {
		code, stderr := runCLI(t, append(append([]string{}, tc.args[0]), append(dirs, tc.args[1:]...)...)...)
		if code != tc.wantCode || !strings.Contains(stderr, tc.wantErr) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.wantCode, tc.wantErr)
		}
	}
	if data, _ := os.ReadFile(conf); string(data) != flannelConflist {
		t.Errorf("conflist changed by failed invocations:\n%s", data)
	}
	if _, err := os.Stat(filepath.Join(in.binDir, "weft-cni")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("binary installed by failed invocations: %v", err)
	}
	if code, stderr := runCLI(t, "install", "--cni-bin-dir="+in.binDir, "--cni-conf-dir="+t.TempDir()); code != 1 || !strings.Contains(stderr, "no network configuration") {
		t.Errorf("install without a conflist (no --watch): exit %d, %q; want 1 and an error", code, stderr)
	}
}

// TestCNICommandWins: with CNI_COMMAND set the binary is the plugin, even
// when its first argument names a subcommand.
func TestCNICommandWins(t *testing.T) {
	in, _ := newInstaller(t)
	cmd := exec.Command(pluginBin, "install", "--cni-bin-dir="+in.binDir, "--cni-conf-dir="+in.confDir)
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"1.0.0"}`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"supportedVersions"`) {
		t.Errorf("VERSION output %s", out)
	}
	if _, err := os.Stat(filepath.Join(in.binDir, "weft-cni")); !errors.Is(err, os.ErrNotExist) {
		t.Error("installed although CNI_COMMAND was set")
	}
}

func TestCLIWatchUninstallOnExit(t *testing.T) {
	for _, uninstallOnExit := range []bool{true, false} {
		t.Run(map[bool]string{true: "uninstall-on-exit", false: "stay"}[uninstallOnExit], func(t *testing.T) {
			in, _ := newInstaller(t)
			conf := filepath.Join(in.confDir, "10-flannel.conflist")
			writeFile(t, conf, flannelConflist, 0o644)
			args := []string{"install", "--watch", "--watch-interval=20ms", "--cni-bin-dir=" + in.binDir, "--cni-conf-dir=" + in.confDir}
			if uninstallOnExit {
				args = append(args, "--uninstall-on-exit")
			}
			cmd := exec.Command(pluginBin, args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			eventually(t, "the entry", func() bool { return hasWeft(conf) })
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit after SIGTERM: %v: %s", err, stderr.String())
			}
			_, binErr := os.Stat(filepath.Join(in.binDir, "weft-cni"))
			if uninstallOnExit {
				if diff := cmp.Diff(decode(t, []byte(flannelConflist)), readJSON(t, conf)); diff != "" {
					t.Errorf("conflist after SIGTERM (-want +got):\n%s", diff)
				}
				if !errors.Is(binErr, os.ErrNotExist) {
					t.Errorf("binary after SIGTERM: %v, want it removed", binErr)
				}
			} else if !hasWeft(conf) || binErr != nil {
				t.Errorf("uninstalled on SIGTERM without --uninstall-on-exit (binary: %v)", binErr)
			}
		})
	}
}
