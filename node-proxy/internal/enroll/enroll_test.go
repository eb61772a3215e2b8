package enroll

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftmesh/weft/node-proxy/netns"
	"github.com/weftmesh/weft/node-proxy/netns/netnstest"
)

// fakeHandler records calls. If release is set, Add signals entered and
// waits for release to be closed.
type fakeHandler struct {
	addErr   error
	checkErr error
	entered  chan struct{}
	release  chan struct{}

	mu      sync.Mutex // guards the fields below
	added   []Pod
	inodes  []uint64
	removed []PodRef
	checked []PodRef
}

var _ Handler = (*fakeHandler)(nil)

func (h *fakeHandler) Add(ctx context.Context, pod Pod) error {
	if h.release != nil {
		h.entered <- struct{}{}
		<-h.release
	}
	var st unix.Stat_t
	err := pod.NetNS.WithFd(func(fd int) error { return unix.Fstat(fd, &st) })
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		return err
	}
	h.added = append(h.added, pod)
	h.inodes = append(h.inodes, st.Ino)
	return h.addErr
}

func (h *fakeHandler) Remove(ctx context.Context, ref PodRef) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removed = append(h.removed, ref)
	return nil
}

func (h *fakeHandler) Check(ctx context.Context, ref PodRef) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checked = append(h.checked, ref)
	return h.checkErr
}

// closeAll closes the namespaces the handler kept.
func (h *fakeHandler) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.added {
		p.NetNS.Close()
	}
}

// startServer serves h on a socket in a temp dir until the test ends.
func startServer(t *testing.T, h *fakeHandler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "node-proxy.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("socket mode = %v, want 0600", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.closeAll()
	})
	return path
}

// podNS returns a network namespace for a pod: a fresh one as root, else
// the test's own (which is a netns all the same).
func podNS(t *testing.T) *netns.NS {
	t.Helper()
	if os.Geteuid() == 0 {
		return netnstest.New(t, "enroll")
	}
	ns, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

func inode(t *testing.T, ns *netns.NS) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := ns.WithFd(func(fd int) error { return unix.Fstat(fd, &st) }); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

var testPod = Pod{UID: "6f1c0b7e-1111-4a2b-9c3d-abcdefabcdef", Namespace: "shop", Name: "cart-7d9f"}

func TestAddSendsNetNS(t *testing.T) {
	h := &fakeHandler{}
	c := &Client{SocketPath: startServer(t, h)}
	ns := podNS(t)
	pod := testPod
	pod.NetNS = ns
	pod.NetNSPath = "/var/run/netns/cni-1234"

	enrolled, err := c.Add(context.Background(), pod)
	if err != nil || !enrolled {
		t.Fatalf("Add = %v, %v; want true, nil", enrolled, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.added) != 1 {
		t.Fatalf("handler saw %d adds, want 1", len(h.added))
	}
	got := h.added[0]
	if got.Ref() != pod.Ref() || got.NetNSPath != pod.NetNSPath {
		t.Errorf("handler got pod %+v, want %+v", got, pod)
	}
	if got, want := h.inodes[0], inode(t, ns); got != want {
		t.Errorf("handler's netns inode = %d, want %d", got, want)
	}
	if ns.Fd() < 0 {
		t.Errorf("client's NS was closed by Add")
	}
}

func TestAddByPath(t *testing.T) {
	netnstest.RequireRoot(t)
	h := &fakeHandler{}
	c := &Client{SocketPath: startServer(t, h)}
	ns := netnstest.New(t, "enroll")
	pod := testPod
	pod.NetNSPath = ns.String()
	if _, err := c.Add(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.inodes) != 1 || h.inodes[0] != inode(t, ns) {
		t.Errorf("handler inodes = %v, want [%d]", h.inodes, inode(t, ns))
	}
}

func TestReplyWaitsForHandler(t *testing.T) {
	h := &fakeHandler{entered: make(chan struct{}), release: make(chan struct{})}
	c := &Client{SocketPath: startServer(t, h)}
	pod := testPod
	pod.NetNS = podNS(t)

	type result struct {
		enrolled bool
		err      error
	}
	done := make(chan result, 1)
	go func() {
		e, err := c.Add(context.Background(), pod)
		done <- result{e, err}
	}()
	<-h.entered
	select {
	case r := <-done:
		t.Fatalf("Add returned (%v, %v) while the handler was still running", r.enrolled, r.err)
	default:
	}
	close(h.release)
	if r := <-done; r.err != nil || !r.enrolled {
		t.Fatalf("Add = %v, %v; want true, nil", r.enrolled, r.err)
	}
}

func TestAddOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name         string
		addErr       error
		wantEnrolled bool
		wantErr      string // substring; "" = no error
	}{
		{name: "enrolled", wantEnrolled: true},
		{name: "not meshed", addErr: ErrNotMeshed},
		{name: "wrapped not meshed", addErr: errors.Join(errors.New("namespace shop"), ErrNotMeshed)},
		{name: "handler error", addErr: errors.New("install nftables: permission denied"), wantErr: "install nftables: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &fakeHandler{addErr: tc.addErr}
			c := &Client{SocketPath: startServer(t, h)}
			pod := testPod
			pod.NetNS = podNS(t)
			enrolled, err := c.Add(context.Background(), pod)
			if tc.wantErr == "" {
				if err != nil || enrolled != tc.wantEnrolled {
					t.Fatalf("Add = %v, %v; want %v, nil", enrolled, err, tc.wantEnrolled)
				}
				return
			}
			var rej *RejectedError
			if !errors.As(err, &rej) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Add error = %v, want a *RejectedError containing %q", err, tc.wantErr)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if fd := h.added[0].NetNS.Fd(); fd != -1 {
				t.Errorf("server left the NS of a failed Add open (fd %d)", fd)
			}
			h.added = nil // already closed
		})
	}
}

func TestRemoveAndCheck(t *testing.T) {
	h := &fakeHandler{}
	c := &Client{SocketPath: startServer(t, h)}
	ref := testPod.Ref()
	if err := c.Remove(context.Background(), ref); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for _, tc := range []struct {
		checkErr     error
		wantEnrolled bool
		wantErr      bool
	}{
		{nil, true, false},
		{ErrNotMeshed, false, false},
		{errors.New("pod should be enrolled but is not"), false, true},
	} {
		h.mu.Lock()
		h.checkErr = tc.checkErr
		h.mu.Unlock()
		enrolled, err := c.Check(context.Background(), ref)
		if enrolled != tc.wantEnrolled || (err != nil) != tc.wantErr {
			t.Errorf("Check with handler error %v = %v, %v; want %v, error %v", tc.checkErr, enrolled, err, tc.wantEnrolled, tc.wantErr)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.removed) != 1 || h.removed[0] != ref {
		t.Errorf("removed = %v, want [%v]", h.removed, ref)
	}
	if len(h.checked) != 3 {
		t.Errorf("checked %d times, want 3", len(h.checked))
	}
}

func TestUnreachable(t *testing.T) {
	c := &Client{SocketPath: filepath.Join(t.TempDir(), "nobody.sock")}
	err := c.Remove(context.Background(), testPod.Ref())
	var unr *UnreachableError
	if !errors.As(err, &unr) {
		t.Fatalf("Remove error = %v, want *UnreachableError", err)
	}
}

// rawExchange sends msg with fds and returns the reply.
func rawExchange(t *testing.T, path string, msg []byte, fds []int) reply {
	t.Helper()
	nc, err := net.Dial("unixpacket", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	conn := nc.(*net.UnixConn)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(msg, oob, nil); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxMessageSize)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	rep, err := decodeReply(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestMalformedRequests(t *testing.T) {
	h := &fakeHandler{}
	path := startServer(t, h)
	ns := podNS(t)
	notNS, err := os.Open(path) // a descriptor, but not of a namespace
	if err != nil {
		notNS, err = os.Open(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
	}
	defer notNS.Close()
	nsFD, fileFD := ns.Fd(), int(notNS.Fd())

	valid := func(op Op) []byte {
		b, _ := json.Marshal(request{Version: 1, Op: op, Pod: &Pod{UID: "u1", Namespace: "n", Name: "p"}})
		return b
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		fds  []int
		want string
	}{
		{"not json", []byte("hello"), nil, "malformed request"},
		{"empty object", []byte("{}"), nil, "unsupported protocol version 0"},
		{"trailing data", append(valid(OpDel), []byte(" {}")...), nil, "data after"},
		{"unknown op", []byte(`{"version":1,"op":"nuke","pod":{"uid":"u","namespace":"n","name":"p"}}`), nil, "unknown op"},
		{"no pod", []byte(`{"version":1,"op":"del"}`), nil, "no pod"},
		{"bad uid", []byte(`{"version":1,"op":"del","pod":{"uid":"../etc","namespace":"n","name":"p"}}`), nil, "pod uid"},
		{"relative netns path", []byte(`{"version":1,"op":"add","pod":{"uid":"u","namespace":"n","name":"p","netnsPath":"x"}}`), []int{nsFD}, "absolute"},
		{"oversized", append(valid(OpDel), make([]byte, MaxMessageSize)...), nil, "exceeds"},
		{"add without fd", valid(OpAdd), nil, "exactly one network namespace descriptor, got 0"},
		{"add with two fds", valid(OpAdd), []int{nsFD, nsFD}, "got 2"},
		{"too many fds", valid(OpAdd), []int{nsFD, nsFD, nsFD, nsFD, nsFD, nsFD}, "too many file descriptors"},
		{"del with fd", valid(OpDel), []int{nsFD}, "takes no file descriptor"},
		{"add with a file", valid(OpAdd), []int{fileFD}, "not a namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := rawExchange(t, path, tc.msg, tc.fds)
			if rep.OK || !strings.Contains(rep.Error, tc.want) {
				t.Errorf("reply = %+v, want ok=false with error containing %q", rep, tc.want)
			}
		})
	}
	// The server still serves, and the handler saw none of the above.
	if rep := rawExchange(t, path, valid(OpAdd), []int{nsFD}); !rep.OK || !rep.Enrolled {
		t.Errorf("valid add after malformed ones: reply %+v, want ok and enrolled", rep)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.added) != 1 || len(h.removed) != 0 {
		t.Errorf("handler saw %d adds and %d removes, want 1 and 0", len(h.added), len(h.removed))
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"version":1,"op":"add","pod":{"uid":"u","namespace":"n","name":"p","netnsPath":"/run/netns/x"}}`))
	f.Add([]byte(`{"version":1,"op":"del","pod":{"uid":"u","namespace":"n","name":"p"}}`))
	f.Add([]byte(`{"version":1,"op":"check","pod":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			return
		}
		// A valid request survives a round trip.
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := decodeRequest(again)
		if err != nil {
			t.Fatalf("re-encoded %s: %v", again, err)
		}
		if req2.Op != req.Op || *req2.Pod != *req.Pod {
			t.Fatalf("round trip: got %+v, want %+v", req2, req)
		}
	})
}
