package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const peerID = "spiffe://cluster.local/ns/shop/sa/cart"

// through writes input to an identityConn in pieces of size chunk (0: all
// at once) and returns what the application received and the first error.
func through(t *testing.T, input string, chunk int) (string, error) {
	t.Helper()
	return throughAuth(t, input, chunk, nil)
}

// throughAuth is through with an authorize function.
func throughAuth(t *testing.T, input string, chunk int, authorize func(method, path string) error) (string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- ""
			return
		}
		b, _ := io.ReadAll(c)
		c.Close()
		got <- string(b)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ic := newIdentityConn(c.(*net.TCPConn), spiffeid.RequireFromString(peerID), authorize)
	var werr error
	in := []byte(input)
	for len(in) > 0 && werr == nil {
		n := len(in)
		if chunk > 0 {
			n = min(chunk, len(in))
		}
		var k int
		k, werr = ic.Write(in[:n])
		if werr == nil && k != n {
			t.Fatalf("Write(%d bytes) = %d, nil; want all", n, k)
		}
		in = in[n:]
	}
	ic.CloseWrite()
	out := <-got
	ic.Close()
	return out, werr
}

const hdr = "X-Weft-Peer-Identity: " + peerID + "\r\n"

func TestIdentityConn(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n" + hdr + "\r\n"},
		{"no headers", "GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.0\r\n" + hdr + "\r\n"},
		{"forged header dropped, any case", "GET / HTTP/1.1\r\nx-weft-PEER-identity: spiffe://evil\r\nHost: a\r\nX-Weft-Peer-Identity:spiffe://evil2\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: a\r\n" + hdr + "\r\n"},
		{"Content-Length body is not parsed", "POST /p HTTP/1.1\r\nContent-Length: 32\r\n\r\nX-Weft-Peer-Identity: forged\r\n\r\n",
			"POST /p HTTP/1.1\r\nContent-Length: 32\r\n" + hdr + "\r\nX-Weft-Peer-Identity: forged\r\n\r\n"},
		{"pipelined", "GET /1 HTTP/1.1\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\n\r\n",
			"GET /1 HTTP/1.1\r\n" + hdr + "\r\nPOST /2 HTTP/1.1\r\nContent-Length: 3\r\n" + hdr + "\r\nabcGET /3 HTTP/1.1\r\n" + hdr + "\r\n"},
		{"chunked with trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Weft-Peer-Identity: forged\r\nX-Sum: 1\r\n\r\nGET /next HTTP/1.1\r\n\r\n",
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + hdr + "\r\n5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\nGET /next HTTP/1.1\r\n" + hdr + "\r\n"},
		{"upgrade then raw", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85binary",
			"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + hdr + "\r\n\x81\x85binary"},
	} {
		for _, chunk := range []int{0, 1, 2, 7} {
			got, err := through(t, tc.in, chunk)
			if err != nil {
				t.Errorf("%s (writes of %d): %v", tc.name, chunk, err)
				continue
			}
			if got != tc.want {
				t.Errorf("%s (writes of %d):\ngot  %q\nwant %q", tc.name, chunk, got, tc.want)
			}
		}
	}
}

func TestIdentityConnRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"not HTTP", "\x16\x03\x01\x02\x00 hello\r\n\r\n"},
		{"bad version", "GET / SPDY/3\r\n\r\n"},
		{"smuggling shape", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"two lengths", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
		{"negative length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"},
		{"gzip transfer coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"folded header", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"},
		{"space in name", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"},
		{"chunk longer than its size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"},
		{"bare LF in chunk line", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n"},
		{"head too large", "GET / HTTP/1.1\r\nA: " + strings.Repeat("a", maxRequestHead) + "\r\n\r\n"},
		{"bare LF in the request line", "0 * HTTP/1.0\n\r\n\r\n"},
		{"bare LF in a header line", "GET / HTTP/1.1\r\nA: b\nX-Weft-Peer-Identity: spiffe://evil\r\n\r\n"},
		{"bare CR in a header line", "GET / HTTP/1.1\r\nA: b\rX-Weft-Peer-Identity: spiffe://evil\r\n\r\n"},
		{"forged name after an upgrade", "GET / HTTP/1.1\r\nUpgrade: x\r\n\r\nGET / HTTP/1.1\r\nX-WEFT-PEER-IDENTITY: spiffe://evil\r\n\r\n"},
	} {
		for _, chunk := range []int{0, 1, 5} {
			_, err := through(t, tc.in, chunk)
			if !errors.Is(err, errMalformedHTTP) {
				t.Errorf("%s (writes of %d): err = %v; want errMalformedHTTP", tc.name, chunk, err)
			}
		}
	}
}

func FuzzIdentityConn(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), uint8(3))
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), uint8(1))
	f.Add([]byte("GET / HTTP/1.1\r\nUpgrade: ws\r\n\r\nx-weft-peer-identit"), uint8(9))
	f.Add([]byte("GET /a HTTP/1.1\r\n\r\nDELETE /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\n\r\n"), uint8(4))
	noDelete := func(method, _ string) error {
		if method == http.MethodDelete {
			return errors.New("no DELETE")
		}
		return nil
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		out, err := throughAuth(t, string(in), int(chunk), noDelete)
		if err != nil {
			return
		}
		// Whatever was accepted, as Go's HTTP server reads it: every request
		// carries exactly our identity, in headers and trailers.
		br := bufio.NewReader(strings.NewReader(out))
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.Method == http.MethodDelete {
				t.Fatalf("refused request %s %s reached the application", req.Method, req.URL)
			}
			if got := req.Header.Values(PeerIdentityHeader); len(got) != 1 || got[0] != peerID {
				t.Fatalf("request %s %s reached the application with identity %q", req.Method, req.URL, got)
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if v := req.Trailer.Values(PeerIdentityHeader); len(v) > 0 {
				t.Fatalf("identity %q reached the application in a trailer", v)
			}
			if req.Method == http.MethodConnect || req.Header.Get("Upgrade") != "" {
				return // the rest is opaque
			}
		}
	})
}

// The authorization tests put a real application behind identityConn on
// loopback and play the tunnel: one goroutine writes the caller's bytes
// into Write, another reads the application's answers from Read.

var errNoAdmin = errors.New("no /admin")

// denyAdmin refuses paths under /admin.
func denyAdmin(_, path string) error {
	if strings.HasPrefix(path, "/admin") {
		return errNoAdmin
	}
	return nil
}

// seenRequest is a request as the application received it.
type seenRequest struct{ method, uri, identity, body string }

// startApp runs a net/http server that answers "ok <uri>" and records
// what it serves.
func startApp(t *testing.T) (addr string, seen func() []seenRequest) {
	t.Helper()
	var mu sync.Mutex
	var reqs []seenRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, seenRequest{r.Method, r.RequestURI, strings.Join(r.Header.Values(PeerIdentityHeader), ","), string(body)})
		mu.Unlock()
		io.WriteString(w, "ok "+r.RequestURI)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs)
	}
}

// exchange dials addr through an identityConn, writes input in pieces of
// size chunk (0: at once) and then half-closes, while reading everything
// Read returns until io.EOF. It returns what was read and the conn.
func exchange(t *testing.T, addr string, authorize func(method, path string) error, input string, chunk int, setup func(*identityConn)) (string, *identityConn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ic := newIdentityConn(c.(*net.TCPConn), spiffeid.RequireFromString(peerID), authorize)
	defer ic.Close()
	if setup != nil {
		setup(ic)
	}
	type result struct {
		b   []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(ic)
		read <- result{b, err}
	}()
	in := []byte(input)
	for len(in) > 0 {
		n := len(in)
		if chunk > 0 {
			n = min(chunk, len(in))
		}
		if k, err := ic.Write(in[:n]); k != n || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v; want all, nil", n, k, err)
		}
		in = in[n:]
	}
	if err := ic.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	select {
	case r := <-read:
		if r.err != nil {
			t.Fatalf("Read: %v", r.err)
		}
		return string(r.b), ic
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not end")
		return "", nil
	}
}

// inboundResponse is an HTTP response as the caller parsed it.
type inboundResponse struct {
	status      int
	contentType string
	close       bool
	body        string
}

func parseResponses(t *testing.T, raw string) []inboundResponse {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	var out []inboundResponse
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return out
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v in %q", len(out)+1, err, raw)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v in %q", len(out)+1, err, raw)
		}
		out = append(out, inboundResponse{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Close, string(body)})
	}
}

var deniedResponse = inboundResponse{http.StatusForbidden, "text/plain", true, "RBAC: access denied\n"}

func okResponse(uri string) inboundResponse {
	return inboundResponse{http.StatusOK, "text/plain; charset=utf-8", false, "ok " + uri}
}

func TestInboundAuthorizeAllowed(t *testing.T) {
	addr, seen := startApp(t)
	raw, ic := exchange(t, addr, denyAdmin, "GET /shop HTTP/1.1\r\nHost: a\r\n\r\n", 0, nil)
	if got, want := parseResponses(t, raw), []inboundResponse{okResponse("/shop")}; !slices.Equal(got, want) {
		t.Errorf("responses %+v; want %+v", got, want)
	}
	if got, want := seen(), []seenRequest{{"GET", "/shop", peerID, ""}}; !slices.Equal(got, want) {
		t.Errorf("application saw %+v; want %+v", got, want)
	}
	if err := ic.Denied(); err != nil {
		t.Errorf("Denied() = %v; want nil", err)
	}
}

func TestInboundAuthorizeDenied(t *testing.T) {
	addr, seen := startApp(t)
	raw, ic := exchange(t, addr, denyAdmin, "GET /admin/users HTTP/1.1\r\nHost: a\r\n\r\n", 0, nil)
	if got, want := parseResponses(t, raw), []inboundResponse{deniedResponse}; !slices.Equal(got, want) {
		t.Errorf("responses %+v; want %+v", got, want)
	}
	if raw != forbidden {
		t.Errorf("response %q; want %q", raw, forbidden)
	}
	if got := seen(); len(got) != 0 {
		t.Errorf("application saw %+v; want nothing", got)
	}
	if err := ic.Denied(); !errors.Is(err, errNoAdmin) {
		t.Errorf("Denied() = %v; want %v", err, errNoAdmin)
	}
}

func TestInboundAuthorizeDeniedHEAD(t *testing.T) {
	addr, _ := startApp(t)
	raw, _ := exchange(t, addr, denyAdmin, "HEAD /admin HTTP/1.1\r\nHost: a\r\n\r\n", 0, nil)
	if want := strings.TrimSuffix(forbidden, "RBAC: access denied\n"); raw != want {
		t.Errorf("response %q; want %q (no body)", raw, want)
	}
}

func TestInboundAuthorizePipelined(t *testing.T) {
	const in = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz" +
		"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: a\r\n\r\n"
	for _, chunk := range []int{0, 1, 7} {
		addr, seen := startApp(t)
		type call struct {
			method string
			denied bool
		}
		var calls []call
		raw, ic := exchange(t, addr, denyAdmin, in, chunk, func(ic *identityConn) {
			ic.onRequest = func(method string, denied bool) { calls = append(calls, call{method, denied}) }
		})
		if got, want := parseResponses(t, raw), []inboundResponse{okResponse("/a"), okResponse("/b"), deniedResponse}; !slices.Equal(got, want) {
			t.Errorf("writes of %d: responses %+v; want %+v", chunk, got, want)
		}
		if got, want := seen(), []seenRequest{{"GET", "/a", peerID, ""}, {"POST", "/b", peerID, "xyz"}}; !slices.Equal(got, want) {
			t.Errorf("writes of %d: application saw %+v; want %+v", chunk, got, want)
		}
		if want := []call{{"GET", false}, {"POST", false}, {"GET", true}}; !slices.Equal(calls, want) {
			t.Errorf("writes of %d: onRequest calls %+v; want %+v", chunk, calls, want)
		}
		if !errors.Is(ic.Denied(), errNoAdmin) {
			t.Errorf("writes of %d: Denied() = %v", chunk, ic.Denied())
		}
	}
}

// rawApp accepts one connection, hands it to serve, and returns what
// serve returns.
func rawApp(t *testing.T, serve func(net.Conn) string) (addr string, result <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- ""
			return
		}
		defer c.Close()
		ch <- serve(c)
	}()
	return ln.Addr().String(), ch
}

func TestInboundAuthorizeDeniedBody(t *testing.T) {
	for _, tc := range []struct{ name, denied string }{
		{"Content-Length", "POST /admin HTTP/1.1\r\nContent-Length: 6\r\n\r\nSECRET"},
		{"chunked", "POST /admin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nSECRET\r\n0\r\n\r\n"},
		{"forged identity in the body", "POST /admin HTTP/1.1\r\nContent-Length: 43\r\n\r\nGET / HTTP/1.1\r\nX-Weft-Peer-Identity: x\r\n\r\n"},
	} {
		for _, chunk := range []int{0, 1, 5} {
			// Byte by byte: the application receives the allowed request
			// and nothing of the refused one.
			addr, got := rawApp(t, func(c net.Conn) string {
				b, _ := io.ReadAll(c) // until the denial's half-close
				return string(b)
			})
			allowed := "POST /ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
			raw, _ := exchange(t, addr, denyAdmin, allowed+tc.denied+"GET /after HTTP/1.1\r\n\r\n", chunk, nil)
			if want := "POST /ok HTTP/1.1\r\nContent-Length: 5\r\n" + hdr + "\r\nhello"; <-got != want {
				t.Errorf("%s (writes of %d): application received something else than %q", tc.name, chunk, want)
			}
			if raw != forbidden {
				t.Errorf("%s (writes of %d): response %q; want the 403 alone", tc.name, chunk, raw)
			}
		}
		// And a real server serves the allowed request only.
		addr, seen := startApp(t)
		raw, _ := exchange(t, addr, denyAdmin, "POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"+tc.denied, 0, nil)
		if got, want := parseResponses(t, raw), []inboundResponse{okResponse("/ok"), deniedResponse}; !slices.Equal(got, want) {
			t.Errorf("%s: responses %+v; want %+v", tc.name, got, want)
		}
		if got, want := seen(), []seenRequest{{"POST", "/ok", peerID, "hello"}}; !slices.Equal(got, want) {
			t.Errorf("%s: application saw %+v; want %+v", tc.name, got, want)
		}
	}
}

func TestInboundAuthorizePath(t *testing.T) {
	for _, tc := range []struct{ target, method, path string }{
		{"/", "GET", "/"},
		{"/shop/cart?id=1&x=/admin", "GET", "/shop/cart"},
		{"/a?", "PUT", "/a"},
		{"/a%2Fb?q", "PATCH", "/a%2Fb"},
		{"http://shop.local:8080/api/v1?q=1", "GET", "/api/v1"},
		{"HTTPS://shop.local/x", "GET", "/x"},
		{"http://shop.local", "GET", "/"},
		{"http://shop.local?q=/admin", "GET", "/"},
		{"http://shop.local/", "GET", "/"},
		{"http://u@shop.local:80/a/b/?q", "GET", "/a/b/"},
		{"http:/admin?q", "GET", "/admin"},
		{"http:admin", "GET", "admin"},
		{"http:?q", "GET", "/"},
		{"shop.local:8080/admin", "GET", "8080/admin"},
		{"admin?x", "GET", "admin"},
		{"*", "OPTIONS", "*"},
		{"shop.local:443", "CONNECT", "shop.local:443"},
		{"/x", "BREW", "/x"},
	} {
		addr, _ := rawApp(t, func(c net.Conn) string { io.Copy(io.Discard, c); return "" })
		var gotMethod, gotPath string
		calls := 0
		exchange(t, addr, func(method, path string) error {
			gotMethod, gotPath = method, path
			calls++
			return nil
		}, tc.method+" "+tc.target+" HTTP/1.1\r\nHost: a\r\n\r\n", 0, nil)
		if calls != 1 || gotMethod != tc.method || gotPath != tc.path {
			t.Errorf("%s %s: authorize called %d times, last with (%q, %q); want once with (%q, %q)",
				tc.method, tc.target, calls, gotMethod, gotPath, tc.method, tc.path)
		}
	}
}

func TestInboundAuthorizeNil(t *testing.T) {
	addr, seen := startApp(t)
	raw, ic := exchange(t, addr, nil, "GET /admin HTTP/1.1\r\nHost: a\r\n\r\nGET /b?q HTTP/1.1\r\nHost: a\r\nX-Weft-Peer-Identity: spiffe://evil\r\n\r\n", 3, nil)
	if got, want := parseResponses(t, raw), []inboundResponse{okResponse("/admin"), okResponse("/b?q")}; !slices.Equal(got, want) {
		t.Errorf("responses %+v; want %+v", got, want)
	}
	if got, want := seen(), []seenRequest{{"GET", "/admin", peerID, ""}, {"GET", "/b?q", peerID, ""}}; !slices.Equal(got, want) {
		t.Errorf("application saw %+v; want %+v", got, want)
	}
	if ic.Denied() != nil {
		t.Errorf("Denied() = %v; want nil", ic.Denied())
	}
}

// An application that ignores the half-close is given up on after the
// drain timeout: the response it did send, then the 403.
func TestInboundAuthorizeAppIgnoresEOF(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	addr, _ := rawApp(t, func(c net.Conn) string {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return ""
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		<-release // never closes on its own
		return ""
	})
	const drain = 300 * time.Millisecond
	start := time.Now()
	raw, _ := exchange(t, addr, denyAdmin, "GET /a HTTP/1.1\r\n\r\nGET /admin HTTP/1.1\r\n\r\n", 0, func(ic *identityConn) { ic.drainTimeout = drain })
	if elapsed := time.Since(start); elapsed < drain {
		t.Errorf("the 403 came after %v; want the drain timeout, %v", elapsed, drain)
	}
	if want := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + forbidden; raw != want {
		t.Errorf("response %q; want %q", raw, want)
	}
}

// A denial while Read is blocked on the application, as in the tunnel:
// the deadline and the half-close reach the blocked Read.
func TestInboundAuthorizeDenialWhileReading(t *testing.T) {
	addr, seen := startApp(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ic := newIdentityConn(c.(*net.TCPConn), spiffeid.RequireFromString(peerID), denyAdmin)
	defer ic.Close()
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(ic)
		read <- string(b)
	}()
	for _, req := range []string{"GET /a HTTP/1.1\r\nHost: a\r\n\r\n", "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"} {
		time.Sleep(20 * time.Millisecond) // let Read block
		if n, err := ic.Write([]byte(req)); n != len(req) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	select {
	case raw := <-read: // before the caller's own half-close
		if got, want := parseResponses(t, raw), []inboundResponse{okResponse("/a"), deniedResponse}; !slices.Equal(got, want) {
			t.Errorf("responses %+v; want %+v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not end")
	}
	if err := ic.CloseWrite(); err != nil {
		t.Errorf("CloseWrite after a denial: %v", err)
	}
	if got := len(seen()); got != 1 {
		t.Errorf("application served %d requests; want 1", got)
	}
}
