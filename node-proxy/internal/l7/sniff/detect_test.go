package sniff

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
)

const curlHead = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"

// h2Start is the preface followed by an empty SETTINGS frame, as an h2c
// client sends it.
const h2Start = h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00"

// clientHello returns the first TLS record crypto/tls sends.
func clientHello(t testing.TB) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		_ = tls.Client(c1, &tls.Config{ServerName: "example.com"}).Handshake()
		c1.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c2, hdr); err != nil {
		t.Fatalf("read record header: %v", err)
	}
	rec := make([]byte, 5+int(hdr[3])<<8|int(hdr[4]))
	copy(rec, hdr)
	if _, err := io.ReadFull(c2, rec[5:]); err != nil {
		t.Fatalf("read record: %v", err)
	}
	return rec
}

func TestDetect(t *testing.T) {
	hello := string(clientHello(t))
	longLine := "GET /" + strings.Repeat("a", 5000) + " HTTP/1.1\r\n\r\n"
	tests := []struct {
		name string
		in   string
		want Protocol
		// decidedBy is the shortest prefix for which Detect is final;
		// "" means never final on in.
		decidedBy string
	}{
		{"curl GET", curlHead, HTTP1, "GET /index.html HTTP/1."},
		{"POST with body", "POST /api/v1/items?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}", HTTP1, "POST /api/v1/items?x=1 HTTP/1."},
		{"HEAD HTTP/1.0", "HEAD / HTTP/1.0\r\n\r\n", HTTP1, "HEAD / HTTP/1."},
		{"PUT", "PUT /k HTTP/1.1\r\n", HTTP1, "PUT /k HTTP/1."},
		{"PATCH", "PATCH /k HTTP/1.1\r\n", HTTP1, "PATCH /k HTTP/1."},
		{"DELETE", "DELETE /k HTTP/1.1\r\n", HTTP1, "DELETE /k HTTP/1."},
		{"TRACE", "TRACE / HTTP/1.1\r\n", HTTP1, "TRACE / HTTP/1."},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\n", HTTP1, "OPTIONS * HTTP/1."},
		{"CONNECT authority", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", HTTP1, "CONNECT example.com:443 HTTP/1."},
		{"absolute URI", "GET http://example.com/ HTTP/1.1\r\n", HTTP1, "GET http://example.com/ HTTP/1."},
		{"h2 preface", h2Start, HTTP2, h2Preface},
		{"TLS ClientHello (crypto/tls)", hello, TLS, hello[:6]},
		{"TLS 1.0 ClientHello header", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", TLS, "\x16\x03\x01\x02\x00\x01"},
		{"TLS bad version", "\x16\x03\x09\x00\x10\x01", Unknown, "\x16\x03\x09"},
		{"TLS zero length", "\x16\x03\x01\x00\x00\x01", Unknown, "\x16\x03\x01\x00\x00"},
		{"TLS alert record", "\x15\x03\x03\x00\x02\x02\x28", Unknown, "\x15"},
		{"TLS not ClientHello", "\x16\x03\x03\x00\x10\x02", Unknown, "\x16\x03\x03\x00\x10\x02"},
		{"binary garbage", "\x00\x01\x02\xff\xfe", Unknown, "\x00"},
		{"postgres startup", "\x00\x00\x00\x08\x04\xd2\x16\x2f", Unknown, "\x00"},
		{"redis", "*1\r\n$4\r\nPING\r\n", Unknown, "*"},
		{"ssh banner", "SSH-2.0-OpenSSH_9.6\r\n", Unknown, "S"},
		{"long first line", longLine, Unknown, longLine[:MaxLine]},
		{"GET alone", "GET", Unknown, ""},
		{"GET and target", "GET /index.html", Unknown, ""},
		{"lowercase get", "get / HTTP/1.1\r\n\r\n", Unknown, "g"},
		{"unknown method", "GETX / HTTP/1.1\r\n", Unknown, "GETX"},
		{"PROPFIND", "PROPFIND / HTTP/1.1\r\n", Unknown, "PRO"},
		{"method too long", "CONNECTX / HTTP/1.1\r\n", Unknown, "CONNECTX"},
		{"leading space", " GET / HTTP/1.1\r\n", Unknown, " "},
		{"two spaces", "GET  / HTTP/1.1\r\n", Unknown, "GET  "},
		{"tab in target", "GET /a\tb HTTP/1.1\r\n", Unknown, "GET /a\t"},
		{"HTTP/0.9", "GET /\r\n", Unknown, "GET /\r"},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\n", Unknown, "GET / HTTP/2"},
		{"lowercase version", "GET / http/1.1\r\n", Unknown, "GET / h"},
		{"PRI as HTTP/1.1", "PRI * HTTP/1.1\r\n\r\n", Unknown, "PRI * HTTP/1"},
		{"preface without SM", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", Unknown, "PRI * HTTP/2.0\r\n\r\nX"},
		{"P alone", "P", Unknown, ""},
		{"empty", "", Unknown, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.HasPrefix(tt.in, tt.decidedBy) {
				t.Fatalf("bad test: decidedBy %q is not a prefix of in", tt.decidedBy)
			}
			finalAt := len(tt.decidedBy)
			if tt.decidedBy == "" {
				finalAt = len(tt.in) + 1 // never
			}
			in := []byte(tt.in)
			for k := 0; k <= len(in); k++ {
				got, final := Detect(in[:k])
				switch {
				case final && got != tt.want:
					t.Fatalf("Detect(%q) = %v, final; want %v", in[:k], got, tt.want)
				case final != (k >= finalAt):
					t.Fatalf("Detect(%q) final = %v, want %v", in[:k], final, k >= finalAt)
				case !final && got != Unknown:
					t.Fatalf("Detect(%q) = %v, not final; want Unknown while not final", in[:k], got)
				}
			}
		})
	}
}

func TestProtocolString(t *testing.T) {
	for p, want := range map[Protocol]string{Unknown: "tcp", HTTP1: "http1", HTTP2: "http2", TLS: "tls", Protocol(42): "tcp"} {
		if got := p.String(); got != want {
			t.Errorf("Protocol(%d).String() = %q, want %q", int(p), got, want)
		}
	}
}

func TestDetectDoesNotAllocate(t *testing.T) {
	for _, in := range []string{curlHead, h2Start, "GET /" + strings.Repeat("a", 5000)} {
		b := []byte(in)
		if n := testing.AllocsPerRun(100, func() { Detect(b) }); n != 0 {
			t.Errorf("Detect(%.20q...) allocates %v times, want 0", in, n)
		}
	}
}

func FuzzDetect(f *testing.F) {
	for _, s := range []string{curlHead, h2Start, "GET", "get / HTTP/1.1", "\x16\x03\x01\x02\x00\x01", "\x00\xff", "PRI * HTTP/1.1\r\n", "OPTIONS * HTTP/1.1\r\n"} {
		f.Add([]byte(s))
	}
	f.Add(clientHello(f))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 2*MaxLine {
			in = in[:2*MaxLine]
		}
		all, allFinal := Detect(in)
		if !allFinal && (all != Unknown || len(in) >= MaxLine) {
			t.Fatalf("Detect(%q) = %v, %v: not final must be Unknown and shorter than MaxLine", in, all, allFinal)
		}
		// The first final answer must hold for every longer prefix; Detect
		// is checked on the next prefix, a middle one and the whole input.
		for k := 0; k <= len(in); k++ {
			p, final := Detect(in[:k])
			if !final {
				continue
			}
			for _, j := range []int{k + 1, (k + len(in)) / 2, len(in)} {
				if j > len(in) {
					continue
				}
				if q, qFinal := Detect(in[:j]); q != p || !qFinal {
					t.Fatalf("Detect(%q) = %v, final but Detect(%q) = %v, %v", in[:k], p, in[:j], q, qFinal)
				}
			}
			break
		}
	})
}

func BenchmarkDetect(b *testing.B) {
	head := []byte("GET /api/v1/products/12345?include=reviews&limit=20 HTTP/1.1\r\n" +
		"Host: shop.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		if p, final := Detect(head); p != HTTP1 || !final {
			b.Fatalf("Detect = %v, %v", p, final)
		}
	}
}
