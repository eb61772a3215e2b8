package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/internal/enroll"
	"github.com/weftmesh/weft/node-proxy/netns/netnstest"
)

// pluginBin is the weft-cni binary built for this test run.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "weft-cni-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "weft-cni")
	build := exec.Command("go", "build", "-o", pluginBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build weft-cni:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fakeNodeProxy is an enroll.Handler recording what it is told.
type fakeNodeProxy struct {
	addErr   error
	checkErr error

	mu      sync.Mutex // guards the fields below
	added   []enroll.Pod
	inodes  []uint64
	removed []enroll.PodRef
}

func (h *fakeNodeProxy) Add(ctx context.Context, pod enroll.Pod) error {
	var st unix.Stat_t
	err := pod.NetNS.WithFd(func(fd int) error { return unix.Fstat(fd, &st) })
	h.mu.Lock()
	defer h.mu.Unlock()
	pod.NetNS.Close() // this fake keeps nothing
	if err != nil {
		return err
	}
	h.added = append(h.added, pod)
	h.inodes = append(h.inodes, st.Ino)
	return h.addErr
}

func (h *fakeNodeProxy) Remove(ctx context.Context, ref enroll.PodRef) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed = append(h.removed, ref)
	return nil
}

func (h *fakeNodeProxy) Check(ctx context.Context, ref enroll.PodRef) error { return h.checkErr }

// serve runs h on a socket in a temp dir until the test ends.
func serve(t *testing.T, h *fakeNodeProxy) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node-proxy.sock")
	ln, err := enroll.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- enroll.Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

const (
	podUID  = "0d7e4c1a-5b1f-4f6e-9a55-3c2b1e0f9a77"
	cniArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart-7d9f;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=" + podUID
)

// prevResult is what the cluster's CNI plugin returned before us.
var prevResult = map[string]any{
	"cniVersion": "1.0.0",
	"interfaces": []any{map[string]any{"name": "eth0", "mac": "0a:58:0a:f4:01:05", "sandbox": "/var/run/netns/x"}},
	"ips":        []any{map[string]any{"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": float64(0)}},
	"routes":     []any{map[string]any{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}},
	"dns":        map[string]any{"nameservers": []any{"10.96.0.10"}, "search": []any{"shop.svc.cluster.local"}},
}

// netConf returns the network configuration the runtime pipes to us.
func netConf(t *testing.T, socketPath string, failOpen bool) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"cniVersion":     "1.0.0",
		"name":           "k8s-pod-network",
		"type":           "weft-cni",
		"socketPath":     socketPath,
		"failOpen":       failOpen,
		"timeoutSeconds": 5,
		"prevResult":     prevResult,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type run struct {
	code           int
	stdout, stderr string
}

// runPlugin runs weft-cni the way a container runtime does.
func runPlugin(t *testing.T, command, netnsPath, args string, stdin []byte) run {
	t.Helper()
	cmd := exec.Command(pluginBin)
	cmd.Env = []string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=4f2a9b7c1d",
		"CNI_NETNS=" + netnsPath,
		"CNI_IFNAME=eth0",
		"CNI_ARGS=" + args,
		"CNI_PATH=" + filepath.Dir(pluginBin),
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run weft-cni: %v", err)
	}
	return run{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// podNetNS returns the path of a fresh network namespace for a pod.
func podNetNS(t *testing.T) (string, uint64) {
	t.Helper()
	ns := netnstest.New(t, "cni") // skips unless root: the plugin refuses its own netns
	var st unix.Stat_t
	if err := ns.WithFd(func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		t.Fatal(err)
	}
	return ns.String(), st.Ino
}

// cniError decodes a CNI error printed on stdout.
func cniError(t *testing.T, r run) (code int, msg string) {
	t.Helper()
	var e struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &e); err != nil {
		t.Fatalf("stdout %q is not a CNI error: %v", r.stdout, err)
	}
	return e.Code, e.Msg
}

func wantPrevResult(t *testing.T, r run) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, want 0; stdout %s; stderr %s", r.code, r.stdout, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout %q: %v", r.stdout, err)
	}
	if diff := cmp.Diff(prevResult, got); diff != "" {
		t.Errorf("ADD result differs from prevResult (-want +got):\n%s", diff)
	}
}

func TestAddEnrollsAndPassesPrevResult(t *testing.T) {
	nsPath, ino := podNetNS(t)
	h := &fakeNodeProxy{}
	sock := serve(t, h)

	wantPrevResult(t, runPlugin(t, "ADD", nsPath, cniArgs, netConf(t, sock, false)))

	h.mu.Lock()
	defer h.mu.Unlock()
	want := enroll.Pod{UID: podUID, Namespace: "shop", Name: "cart-7d9f", NetNSPath: nsPath}
	if len(h.added) != 1 {
		t.Fatalf("node proxy saw %d adds, want 1", len(h.added))
	}
	got := h.added[0]
	got.NetNS = nil
	if got != want {
		t.Errorf("node proxy saw %+v, want %+v", got, want)
	}
	if h.inodes[0] != ino {
		t.Errorf("netns inode = %d, want %d", h.inodes[0], ino)
	}
}

func TestAddOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   bool
		addErr   error
		failOpen bool
		wantMsg  string // "" = success with prevResult
	}{
		{name: "not meshed", server: true, addErr: enroll.ErrNotMeshed},
		{name: "refused", server: true, addErr: errors.New("install rules: boom"), wantMsg: "install rules: boom"},
		{name: "refused with failOpen", server: true, addErr: errors.New("install rules: boom"), failOpen: true, wantMsg: "install rules: boom"},
		{name: "unreachable", wantMsg: "node proxy unreachable"},
		{name: "unreachable with failOpen", failOpen: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nsPath, _ := podNetNS(t)
			sock := filepath.Join(t.TempDir(), "absent.sock")
			if tc.server {
				sock = serve(t, &fakeNodeProxy{addErr: tc.addErr})
			}
			r := runPlugin(t, "ADD", nsPath, cniArgs, netConf(t, sock, tc.failOpen))
			if tc.wantMsg == "" {
				wantPrevResult(t, r)
				return
			}
			if r.code == 0 {
				t.Fatalf("exit 0, want failure; stdout %s", r.stdout)
			}
			if _, msg := cniError(t, r); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("CNI error msg %q, want it to contain %q", msg, tc.wantMsg)
			}
		})
	}
}

func TestAddNotAPod(t *testing.T) {
	nsPath, _ := podNetNS(t)
	sock := filepath.Join(t.TempDir(), "absent.sock") // never contacted
	wantPrevResult(t, runPlugin(t, "ADD", nsPath, "IgnoreUnknown=1", netConf(t, sock, false)))
}

func TestDel(t *testing.T) {
	nsPath, _ := podNetNS(t)
	t.Run("no node proxy", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "absent.sock")
		if r := runPlugin(t, "DEL", nsPath, cniArgs, netConf(t, sock, false)); r.code != 0 || r.stdout != "" {
			t.Errorf("DEL: exit %d, stdout %q; want 0 and nothing", r.code, r.stdout)
		}
	})
	t.Run("node proxy", func(t *testing.T) {
		h := &fakeNodeProxy{}
		sock := serve(t, h)
		if r := runPlugin(t, "DEL", "", cniArgs, netConf(t, sock, false)); r.code != 0 {
			t.Errorf("DEL: exit %d, stdout %s", r.code, r.stdout)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		want := []enroll.PodRef{{UID: podUID, Namespace: "shop", Name: "cart-7d9f"}}
		if diff := cmp.Diff(want, h.removed); diff != "" {
			t.Errorf("removed (-want +got):\n%s", diff)
		}
	})
}

func TestCheck(t *testing.T) {
	nsPath, _ := podNetNS(t)
	for _, tc := range []struct {
		name     string
		checkErr error
		noServer bool
		wantOK   bool
	}{
		{name: "enrolled", wantOK: true},
		{name: "not meshed", checkErr: enroll.ErrNotMeshed, wantOK: true},
		{name: "missing", checkErr: errors.New("pod is in the mesh but not enrolled")},
		{name: "unreachable", noServer: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "absent.sock")
			if !tc.noServer {
				sock = serve(t, &fakeNodeProxy{checkErr: tc.checkErr})
			}
			r := runPlugin(t, "CHECK", nsPath, cniArgs, netConf(t, sock, false))
			if got := r.code == 0; got != tc.wantOK {
				t.Errorf("CHECK exit %d, want success %v; stdout %s", r.code, tc.wantOK, r.stdout)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runPlugin(t, "VERSION", "", "", []byte(`{"cniVersion":"1.0.0"}`))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stdout)
	}
	var got struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"0.4.0", "1.0.0"}, got.SupportedVersions); diff != "" {
		t.Errorf("supportedVersions (-want +got):\n%s", diff)
	}
}

func TestPodRef(t *testing.T) {
	for _, tc := range []struct {
		args    string
		want    enroll.PodRef
		wantOK  bool
		wantErr bool
	}{
		{args: cniArgs, want: enroll.PodRef{UID: podUID, Namespace: "shop", Name: "cart-7d9f"}, wantOK: true},
		{args: ""},
		{args: "IgnoreUnknown=1;FOO=bar"},
		{args: "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart", wantErr: true},
		{args: "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=cart;K8S_POD_UID=../x", wantErr: true},
	} {
		got, ok, err := podRef(tc.args)
		if got != tc.want || ok != tc.wantOK || (err != nil) != tc.wantErr {
			t.Errorf("podRef(%q) = %+v, %v, %v; want %+v, %v, error %v", tc.args, got, ok, err, tc.want, tc.wantOK, tc.wantErr)
		}
	}
}

func TestAddConfig040(t *testing.T) {
	nsPath, _ := podNetNS(t)
	sock := serve(t, &fakeNodeProxy{})
	prev040 := map[string]any{
		"cniVersion": "0.4.0",
		"interfaces": []any{map[string]any{"name": "eth0", "sandbox": nsPath}},
		"ips":        []any{map[string]any{"version": "4", "address": "10.244.1.6/24", "interface": float64(0)}},
		"dns":        map[string]any{},
	}
	conf, err := json.Marshal(map[string]any{"cniVersion": "0.4.0", "name": "net", "type": "weft-cni", "socketPath": sock, "prevResult": prev040})
	if err != nil {
		t.Fatal(err)
	}
	r := runPlugin(t, "ADD", nsPath, cniArgs, conf)
	if r.code != 0 {
		t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(prev040, got); diff != "" {
		t.Errorf("0.4.0 ADD result (-want +got):\n%s", diff)
	}
}
