package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

func reader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// oneByte reads s one byte per Read, to cross every buffer boundary.
func oneByte(s string) *bufio.Reader {
	return bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(s)), 4096)
}

type fieldWant struct{ name, value string }

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name, in              string
		method, target        string
		minor                 int
		fields                []fieldWant
		cl                    int64
		chunked, close, upgrd bool
	}{
		{name: "get", in: "GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
			method: "GET", target: "/a?b=c", minor: 1, fields: []fieldWant{{"Host", "x"}, {"Accept", "*/*"}}, cl: -1},
		{name: "no fields", in: "GET / HTTP/1.1\r\n\r\n", method: "GET", target: "/", minor: 1, cl: -1},
		{name: "leading empty lines", in: "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
			method: "GET", target: "/", minor: 1, fields: []fieldWant{{"Host", "x"}}, cl: -1},
		{name: "value whitespace trimmed", in: "POST /p HTTP/1.1\r\nX-A: \t v 1 \t\r\nContent-Length:  12 \r\n\r\n",
			method: "POST", target: "/p", minor: 1, fields: []fieldWant{{"X-A", "v 1"}, {"Content-Length", "12"}}, cl: 12},
		{name: "duplicate equal CL", in: "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
			method: "POST", target: "/", minor: 1, fields: []fieldWant{{"Content-Length", "3"}, {"content-length", "3"}}, cl: 3},
		{name: "chunked", in: "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
			method: "POST", target: "/", minor: 1, fields: []fieldWant{{"Transfer-Encoding", "Chunked"}}, cl: -1, chunked: true},
		{name: "connection close", in: "GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n",
			method: "GET", target: "/", minor: 1, fields: []fieldWant{{"Connection", "keep-alive, Close"}}, cl: -1, close: true},
		{name: "http/1.0", in: "GET / HTTP/1.0\r\n\r\n", method: "GET", target: "/", minor: 0, cl: -1, close: true},
		{name: "http/1.0 keep-alive", in: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			method: "GET", target: "/", minor: 0, fields: []fieldWant{{"Connection", "Keep-Alive"}}, cl: -1},
		{name: "http/1.1 keep-alive is not close", in: "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
			method: "GET", target: "/", minor: 1, fields: []fieldWant{{"Connection", "keep-alive"}}, cl: -1},
		{name: "upgrade", in: "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			method: "GET", target: "/ws", minor: 1, fields: []fieldWant{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}}, cl: -1, upgrd: true},
		{name: "absolute-form", in: "GET http://h.example:8080/x?y HTTP/1.1\r\n\r\n", method: "GET", target: "http://h.example:8080/x?y", minor: 1, cl: -1},
		{name: "asterisk", in: "OPTIONS * HTTP/1.1\r\n\r\n", method: "OPTIONS", target: "*", minor: 1, cl: -1},
		{name: "connect", in: "CONNECT [fd00::1]:443 HTTP/1.1\r\nHost: [fd00::1]:443\r\n\r\n",
			method: "CONNECT", target: "[fd00::1]:443", minor: 1, fields: []fieldWant{{"Host", "[fd00::1]:443"}}, cl: -1},
		{name: "obs-text value", in: "GET /%41 HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", method: "GET", target: "/%41", minor: 1, fields: []fieldWant{{"X", "caf\xc3\xa9"}}, cl: -1},
		{name: "empty value", in: "GET / HTTP/1.1\r\nX:\r\n\r\n", method: "GET", target: "/", minor: 1, fields: []fieldWant{{"X", ""}}, cl: -1},
	}
	for _, tt := range tests {
		for _, mk := range []func(string) *bufio.Reader{reader, oneByte} {
			var h Head
			if err := h.ReadRequest(mk(tt.in)); err != nil {
				t.Fatalf("%s: ReadRequest: %v", tt.name, err)
			}
			var got []fieldWant
			for _, f := range h.Fields {
				got = append(got, fieldWant{string(f.Name), string(f.Value)})
			}
			if string(h.Method) != tt.method || string(h.Target) != tt.target || h.Minor != tt.minor ||
				h.ContentLength != tt.cl || h.Chunked != tt.chunked || h.Close != tt.close || h.Upgrade != tt.upgrd {
				t.Errorf("%s: got %q %q 1.%d cl=%d chunked=%v close=%v upgrade=%v", tt.name, h.Method, h.Target, h.Minor,
					h.ContentLength, h.Chunked, h.Close, h.Upgrade)
			}
			if len(got) != len(tt.fields) || (len(got) > 0 && !equalFields(got, tt.fields)) {
				t.Errorf("%s: fields %q, want %q", tt.name, got, tt.fields)
			}
		}
	}
}

func equalFields(a, b []fieldWant) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadRequestSequence(t *testing.T) {
	br := reader("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /3 HTTP/1.1\r\n\r\n")
	var h Head
	for i, want := range []string{"/1", "/2", "/3"} {
		if err := h.ReadRequest(br); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(h.Target) != want {
			t.Fatalf("request %d: target %q, want %q", i, h.Target, want)
		}
		if _, err := h.RequestBody().Copy(io.Discard, br); err != nil {
			t.Fatal(err)
		}
	}
	if len(h.Fields) != 0 || h.ContentLength != -1 {
		t.Errorf("head not reset: %+v", h)
	}
	if err := h.ReadRequest(br); err != io.EOF {
		t.Errorf("at end: got %v, want io.EOF", err)
	}
}

func TestReadTruncated(t *testing.T) {
	for _, in := range []string{"G", "GET / HTTP/1.1\r\n", "GET / HTTP/1.1\r\nHost: x\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r", "\r\nG"} {
		var h Head
		if err := h.ReadRequest(reader(in)); err != io.ErrUnexpectedEOF {
			t.Errorf("%q: got %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
	var h Head
	// Empty lines before a clean close are not a request.
	for _, in := range []string{"", "\r\n", "\r\n\r\n"} {
		if err := h.ReadRequest(reader(in)); err != io.EOF {
			t.Errorf("%q: got %v, want io.EOF", in, err)
		}
	}
	if err := h.ReadResponse(reader("HTTP/1.1 200 OK\r\n")); err != io.ErrUnexpectedEOF {
		t.Errorf("response: got %v, want io.ErrUnexpectedEOF", err)
	}
}

var errRead = errors.New("read failed")

func TestReadError(t *testing.T) {
	var h Head
	br := bufio.NewReader(io.MultiReader(strings.NewReader("GET / HT"), iotest.ErrReader(errRead)))
	if err := h.ReadRequest(br); err != errRead {
		t.Errorf("got %v, want %v", err, errRead)
	}
}

func TestReadRequestMalformed(t *testing.T) {
	big := "GET / HTTP/1.1\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 70) + "\r\n"
	tests := map[string]string{
		"bare LF":                    "GET / HTTP/1.1\nHost: x\r\n\r\n",
		"bare LF in field":           "GET / HTTP/1.1\r\nHost: x\n\r\n",
		"bare LF at end":             "GET / HTTP/1.1\r\nHost: x\r\n\n",
		"bare CR in value":           "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
		"NUL in value":               "GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
		"DEL in value":               "GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
		"folding":                    "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"folding tab":                "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n",
		"leading space first field":  "GET / HTTP/1.1\r\n Host: x\r\n\r\n",
		"space before colon":         "GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
		"tab before colon":           "GET / HTTP/1.1\r\nTransfer-Encoding\t: chunked\r\n\r\n",
		"no colon":                   "GET / HTTP/1.1\r\nHost\r\n\r\n",
		"empty name":                 "GET / HTTP/1.1\r\n: x\r\n\r\n",
		"CL and TE":                  "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"TE and CL":                  "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"TE not ending in chunked":   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
		"TE gzip, chunked":           "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"TE identity":                "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
		"TE twice":                   "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"TE chunked twice":           "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		"TE in HTTP/1.0":             "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"differing CL":               "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"CL same number other text":  "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\n",
		"CL list":                    "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
		"CL negative":                "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"CL plus":                    "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
		"CL hex":                     "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
		"CL empty":                   "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"CL huge":                    "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n",
		"duplicate Host":             "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"head over MaxHead":          big,
		"line over buffer":           "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n\r\n",
		"no version":                 "GET /\r\n\r\n",
		"bad version":                "GET / HTTP/2.0\r\n\r\n",
		"version case":               "GET / http/1.1\r\n\r\n",
		"long version":               "GET / HTTP/1.10\r\n\r\n",
		"extra space":                "GET  / HTTP/1.1\r\n\r\n",
		"space in target":            "GET /a b HTTP/1.1\r\n\r\n",
		"tab in target":              "GET /a\tb HTTP/1.1\r\n\r\n",
		"CTL in target":              "GET /a\x01 HTTP/1.1\r\n\r\n",
		"fragment":                   "GET /a#b HTTP/1.1\r\n\r\n",
		"bad percent":                "GET /%zz HTTP/1.1\r\n\r\n",
		"short percent":              "GET /%4 HTTP/1.1\r\n\r\n",
		"relative target":            "GET a/b HTTP/1.1\r\n\r\n",
		"authority without CONNECT":  "GET h:80 HTTP/1.1\r\n\r\n",
		"ftp scheme":                 "GET ftp://h/ HTTP/1.1\r\n\r\n",
		"userinfo":                   "GET http://u@h/ HTTP/1.1\r\n\r\n",
		"empty host":                 "GET http:///a HTTP/1.1\r\n\r\n",
		"bad port":                   "GET http://h:x/ HTTP/1.1\r\n\r\n",
		"empty port":                 "GET http://h:/ HTTP/1.1\r\n\r\n",
		"long port":                  "GET http://h:123456/ HTTP/1.1\r\n\r\n",
		"bad ipv6":                   "CONNECT [g::1]:443 HTTP/1.1\r\n\r\n",
		"ipv6 junk after":            "CONNECT [::1]x HTTP/1.1\r\n\r\n",
		"unclosed ipv6":              "CONNECT [::1 HTTP/1.1\r\n\r\n",
		"method not token":           "G(T / HTTP/1.1\r\n\r\n",
		"empty method":               " / HTTP/1.1\r\n\r\n",
		"name not token":             "GET / HTTP/1.1\r\nX(y): z\r\n\r\n",
		"empty line then bare LF":    "\r\n\n",
		"single field without colon": "GET / HTTP/1.1\r\nX\r\n\r\n",
	}
	for name, in := range tests {
		var h Head
		if err := h.ReadRequest(reader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	// Leading empty lines count toward MaxHead.
	var h Head
	if err := h.ReadRequest(reader(strings.Repeat("\r\n", MaxHead))); !errors.Is(err, ErrMalformed) {
		t.Errorf("endless empty lines: got %v, want ErrMalformed", err)
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		in     string
		status int
		reason string
		minor  int
		cl     int64
		chunk  bool
		close  bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, "OK", 1, 5, false, false},
		{"HTTP/1.1 404 Not Found\r\n\r\n", 404, "Not Found", 1, -1, false, false},
		{"HTTP/1.1 204\r\n\r\n", 204, "", 1, -1, false, false},
		{"HTTP/1.1 500 \r\n\r\n", 500, "", 1, -1, false, false},
		{"HTTP/1.0 200 OK\r\n\r\n", 200, "OK", 0, -1, false, true},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", 200, "OK", 0, -1, false, false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 200, "OK", 1, -1, false, true},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, "OK", 1, -1, true, false},
		// Transfer-Encoding wins over Content-Length in a response.
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 200, "OK", 1, -1, true, false},
		{"\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 101, "Switching Protocols", 1, -1, false, false},
	}
	for _, tt := range tests {
		var h Head
		if err := h.ReadResponse(oneByte(tt.in)); err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if h.Status != tt.status || string(h.Reason) != tt.reason || h.Minor != tt.minor || h.ContentLength != tt.cl || h.Chunked != tt.chunk || h.Close != tt.close {
			t.Errorf("%q: got %d %q 1.%d cl=%d chunked=%v close=%v", tt.in, h.Status, h.Reason, h.Minor, h.ContentLength, h.Chunked, h.Close)
		}
	}
	for _, in := range []string{
		"HTTP/1.1 200 OK\nX: y\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 600 OK\r\n\r\n",
		"HTTP/1.1 0xx OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 20x OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1\r\n\r\n",
		"HTTP/3.0 200 OK\r\n\r\n",
		"HTTP/1.1 200 O\x00K\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
	} {
		var h Head
		if err := h.ReadResponse(reader(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %v, want ErrMalformed", in, err)
		}
	}
}

func TestGet(t *testing.T) {
	var h Head
	if err := h.ReadRequest(reader("GET / HTTP/1.1\r\nHost: a\r\nX-Y: 1\r\nx-y: 2\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if v, ok := h.Get("x-Y"); !ok || string(v) != "1" {
		t.Errorf("Get(x-Y) = %q, %v", v, ok)
	}
	if _, ok := h.Get("X-Z"); ok {
		t.Error("Get(X-Z) found")
	}
	if _, ok := h.Get("Hos"); ok {
		t.Error("Get(Hos) found")
	}
}

func TestPath(t *testing.T) {
	tests := []struct{ target, path, query string }{
		{"/", "/", ""},
		{"/a/b", "/a/b", ""},
		{"/a?b=c&d", "/a", "b=c&d"},
		{"/a?", "/a", ""},
		{"/a?b?c", "/a", "b?c"},
		{"*", "*", ""},
		{"http://h", "/", ""},
		{"http://h:80", "/", ""},
		{"http://h?q=1", "/", "q=1"},
		{"HTTPS://h/x/y?z", "/x/y", "z"},
		{"http://h/", "/", ""},
		{"h:443", "h:443", ""}, // CONNECT authority-form
	}
	for _, tt := range tests {
		h := Head{Target: []byte(tt.target)}
		p, q := h.Path()
		if string(p) != tt.path || string(q) != tt.query {
			t.Errorf("Path(%q) = %q, %q; want %q, %q", tt.target, p, q, tt.path, tt.query)
		}
	}
}

// TestAgainstNetHTTP checks the table inputs that h1 accepts against
// net/http.
func TestAgainstNetHTTP(t *testing.T) {
	for _, in := range seeds {
		checkAgainstNetHTTP(t, []byte(in))
	}
}

var seeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"\r\nGET /a?b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"POST /p HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET http://h.example:80/x?y HTTP/1.1\r\nHost: other\r\n\r\n",
	"CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n",
	"CONNECT [::1]:443 HTTP/1.1\r\n\r\n",
	"CONNECT [00] HTTP/1.0\r\n\r\n",
	"CONNECT [::ffff:1.2.3.4]:443 HTTP/1.1\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /%41%zz HTTP/1.1\r\n\r\n",
	"GET /a HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
	"GET /a HTTP/1.1\r\nX : a\r\n\r\n",
	"GET /a HTTP/1.1\nX: a\n\n",
	"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
	"PUT /\xff HTTP/1.1\r\nX: \xff\r\n\r\n",
	"GET / HTTP/1.9\r\n\r\n",
	"GET / HTTP/1.1\r\nContent-Length: 007\r\n\r\n",
}

func checkAgainstNetHTTP(t *testing.T, in []byte) {
	var h Head
	if err := h.ReadRequest(bufio.NewReader(bytes.NewReader(in))); err != nil {
		return
	}
	// net/http's server skips leading empty lines before ReadRequest.
	for bytes.HasPrefix(in, []byte("\r\n")) {
		in = in[2:]
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
	if err != nil {
		t.Fatalf("%q: h1 accepts, net/http: %v", in, err)
	}
	if req.Method != string(h.Method) || req.RequestURI != string(h.Target) {
		t.Fatalf("%q: h1 %q %q, net/http %q %q", in, h.Method, h.Target, req.Method, req.RequestURI)
	}
	chunked := len(req.TransferEncoding) > 0 && req.TransferEncoding[0] == "chunked"
	b := h.RequestBody()
	if chunked != b.Chunked {
		t.Fatalf("%q: h1 chunked %v, net/http %v", in, b.Chunked, chunked)
	}
	if !chunked && req.ContentLength != b.Length {
		t.Fatalf("%q: h1 length %d, net/http %d", in, b.Length, req.ContentLength)
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkAgainstNetHTTP)
}

func BenchmarkReadRequest(b *testing.B) {
	const req = "GET /api/v1/items?page=2 HTTP/1.1\r\nHost: web.shop.svc.cluster.local\r\nUser-Agent: bench/1.0\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip\r\nX-Request-Id: 7c1f6a52-0000-4000-8000-00000000000a\r\nConnection: keep-alive\r\n\r\n"
	r := strings.NewReader(req)
	br := bufio.NewReader(r)
	var h Head
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		r.Reset(req)
		br.Reset(r)
		if err := h.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}
