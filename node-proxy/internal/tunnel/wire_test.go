package tunnel

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2client drives a tunnel server frame by frame over real TLS, to send
// what our Client never would.
type h2client struct {
	t    *testing.T
	tc   *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func (e *env) h2client(t *testing.T) *h2client {
	t.Helper()
	raw, err := net.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, clientTLSConfig(e.clientSVID, e.pki.bundle, e.serverID))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(testWait))
	h := &h2client{t: t, tc: tc, fr: http2.NewFramer(tc, tc)}
	h.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	h.enc = hpack.NewEncoder(&h.hbuf)
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return h
}

// headers sends a header block of name, value pairs.
func (h *h2client) headers(id uint32, endStream bool, kv ...string) {
	h.t.Helper()
	h.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hbuf.Bytes(),
		EndHeaders: true, EndStream: endStream}); err != nil {
		h.t.Fatal(err)
	}
}

// status reads frames until the response on stream id and returns its
// :status.
func (h *h2client) status(id uint32) int {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("waiting for the answer on stream %d: %v", id, err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				st, err := parseStatus(f.Fields)
				if err != nil {
					h.t.Fatalf("stream %d: %v", id, err)
				}
				return st
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				h.t.Fatalf("stream %d reset with %v, want an answer", id, f.ErrCode)
			}
		case *http2.GoAwayFrame:
			h.t.Fatalf("GOAWAY %v while waiting on stream %d", f.ErrCode, id)
		}
	}
}

// goAway reads frames until a GOAWAY and returns its code.
func (h *h2client) goAway() http2.ErrCode {
	h.t.Helper()
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("waiting for GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			return ga.ErrCode
		}
	}
}

func TestMalformedRequestsRefused(t *testing.T) {
	e := newEnv(t, func(c *ServerConfig) { c.MaxHeaderListSize = 1024 })
	h := e.h2client(t)
	auth := e.echo.String()
	var id uint32 = 1
	for _, tc := range []struct {
		name   string
		kv     []string
		status int
	}{
		{"GET", []string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", auth}, 400},
		{"no authority", []string{":method", "CONNECT"}, 400},
		{"host name authority", []string{":method", "CONNECT", ":authority", "echo.default.svc:80"}, 400},
		{"no port", []string{":method", "CONNECT", ":authority", "127.0.0.1"}, 400},
		{"extended CONNECT", []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", auth}, 400},
		{"connection header", []string{":method", "CONNECT", ":authority", auth, "connection", "keep-alive"}, 400},
		{"upper-case name", []string{":method", "CONNECT", ":authority", auth, "Traceparent", "x"}, 400},
		{"pseudo after regular", []string{":method", "CONNECT", "baggage", "a=b", ":authority", auth}, 400},
		{"oversized", []string{":method", "CONNECT", ":authority", auth, "baggage", strings.Repeat("b", 1500)}, 431},
	} {
		h.headers(id, false, tc.kv...)
		if got := h.status(id); got != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.status)
		}
		id += 2
	}
	if got := counterValue(e.srv.m.refusals[reasonBadRequest]); got != 8 {
		t.Errorf("refusals{bad_request} = %v, want 8", got)
	}
	if got := counterValue(e.srv.m.refusals[reasonHeadersTooLarge]); got != 1 {
		t.Errorf("refusals{headers_too_large} = %v, want 1", got)
	}

	// The same connection still serves a good request.
	h.headers(id, false, ":method", "CONNECT", ":authority", auth)
	if got := h.status(id); got != 200 {
		t.Fatalf("valid CONNECT after refusals: status %d, want 200", got)
	}
	if err := h.fr.WriteData(id, true, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	var echoed []byte
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if df, ok := f.(*http2.DataFrame); ok && df.StreamID == id {
			echoed = append(echoed, df.Data()...)
			if df.StreamEnded() {
				break
			}
		}
	}
	if string(echoed) != "ping" {
		t.Errorf("echo = %q, want %q", echoed, "ping")
	}
}

func TestProtocolViolationsCloseConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(h *h2client)
		want http2.ErrCode
	}{
		{"HEADERS on an even stream", func(h *h2client) {
			h.headers(2, false, ":method", "CONNECT", ":authority", "127.0.0.1:1")
		}, http2.ErrCodeProtocol},
		{"DATA on an idle stream", func(h *h2client) {
			h.fr.WriteData(9, false, []byte("x"))
		}, http2.ErrCodeProtocol},
		{"stream ID going backwards", func(h *h2client) {
			h.headers(5, false, ":method", "GET")
			h.headers(3, false, ":method", "GET")
		}, http2.ErrCodeProtocol},
		{"connection window overflow", func(h *h2client) {
			h.fr.WriteWindowUpdate(0, 1<<31-1)
		}, http2.ErrCodeFlowControl},
		{"bad max frame size", func(h *h2client) {
			h.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 100})
		}, http2.ErrCodeProtocol},
		{"PUSH_PROMISE from a client", func(h *h2client) {
			h.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true})
		}, http2.ErrCodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			h := e.h2client(t)
			tc.send(h)
			if got := h.goAway(); got != tc.want {
				t.Errorf("GOAWAY %v, want %v", got, tc.want)
			}
			if _, err := h.fr.ReadFrame(); !errors.Is(err, io.EOF) {
				// After GOAWAY the server hangs up.
				var ne net.Error
				if !errors.As(err, &ne) {
					t.Errorf("after GOAWAY: %v, want the connection closed", err)
				}
			}
			// The server is fine: a real client is served.
			s := e.mustDial(t, e.client(t), e.echo)
			s.Close()
		})
	}
}

func TestGarbageAfterHandshake(t *testing.T) {
	e := newEnv(t)
	raw, err := net.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, clientTLSConfig(e.clientSVID, e.pki.bundle, e.serverID))
	defer tc.Close()
	io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	tc.SetReadDeadline(time.Now().Add(testWait))
	if _, err := io.Copy(io.Discard, tc); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("server kept a connection without a preface open")
		}
	}
	waitClosed(t, e.ln.accepted()[0])
	if got := counterValue(e.srv.m.handshakeFailures[hsPreface]); got != 1 {
		t.Errorf("handshake failures{bad_preface} = %v, want 1", got)
	}
}

func TestClientWithoutCertificateRefused(t *testing.T) {
	e := newEnv(t)
	raw, err := net.Dial("tcp", e.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientTLSConfig(e.clientSVID, e.pki.bundle, e.serverID)
	cfg.GetClientCertificate = nil
	tc := tls.Client(raw, cfg)
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(testWait))
	tc.Handshake() // TLS 1.3: the client finishes before the server checks
	io.WriteString(tc, http2.ClientPreface)
	if _, err := io.Copy(io.Discard, tc); err == nil {
		t.Error("server accepted a client without a certificate")
	}
	waitClosed(t, e.ln.accepted()[0])
	if got := counterValue(e.srv.m.handshakeFailures[hsNoCertificate]); got != 1 {
		t.Errorf("handshake failures{no_certificate} = %v, want 1", got)
	}
}
