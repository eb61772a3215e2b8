package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const peerID = "spiffe://cluster.local/ns/shop/sa/cart"

// through writes input to an identityConn in pieces of size chunk (0: all
// at once) and returns what the application received and the first error.
func through(t *testing.T, input string, chunk int) (string, error) {
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
	ic := newIdentityConn(c.(*net.TCPConn), spiffeid.RequireFromString(peerID))
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
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		out, err := through(t, string(in), int(chunk))
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
