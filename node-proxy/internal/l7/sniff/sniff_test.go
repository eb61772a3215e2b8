package sniff

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests use a long sniffing timeout when the client sends a complete
// prefix (Sniff must return on Detect, not on the timeout) and a short one
// when it does not; wait bounds every blocking step generously.
const (
	longTimeout  = time.Minute
	shortTimeout = 50 * time.Millisecond
	wait         = 10 * time.Second
)

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

type sniffResult struct {
	p    Protocol
	conn *Conn
	err  error
}

// sniffAsync runs Sniff in a goroutine; result fails the test if it has not
// returned within wait.
func sniffAsync(c net.Conn, timeout time.Duration, max int) (result func(t *testing.T) sniffResult) {
	ch := make(chan sniffResult, 1)
	go func() {
		p, conn, err := Sniff(c, timeout, max)
		ch <- sniffResult{p, conn, err}
	}()
	return func(t *testing.T) sniffResult {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(wait):
			t.Fatalf("Sniff did not return within %v", wait)
			return sniffResult{}
		}
	}
}

func sniffOK(t *testing.T, c net.Conn, timeout time.Duration, max int, want Protocol) *Conn {
	t.Helper()
	r := sniffAsync(c, timeout, max)(t)
	if r.err != nil {
		t.Fatalf("Sniff: %v", r.err)
	}
	if r.p != want {
		t.Fatalf("Sniff = %v, want %v", r.p, want)
	}
	r.conn.SetDeadline(time.Now().Add(wait))
	return r.conn
}

func TestSniffHTTP1Replays(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	const body = `{"name":"x"}`
	go func() {
		req, _ := http.NewRequest("POST", "http://svc.example/items", strings.NewReader(body))
		req.Write(client)
	}()
	sc := sniffOK(t, server, longTimeout, 0, HTTP1)

	br := bufio.NewReader(sc)
	req, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("read replayed request: %v", err)
	}
	got, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if req.Method != "POST" || req.URL.Path != "/items" || req.Host != "svc.example" || string(got) != body {
		t.Fatalf("got %s %s host %s body %q, want POST /items host svc.example body %q", req.Method, req.URL.Path, req.Host, got, body)
	}
	resp := &http.Response{StatusCode: 204, ProtoMajor: 1, ProtoMinor: 1, Request: req}
	if err := resp.Write(sc); err != nil {
		t.Fatalf("write response: %v", err)
	}
	cresp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("client read response: %v", err)
	}
	if cresp.StatusCode != 204 {
		t.Fatalf("client got status %d, want 204", cresp.StatusCode)
	}
}

// oneConnListener hands out one connection, then blocks until closed.
type oneConnListener struct {
	conn   net.Conn
	once   sync.Once
	closed chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}
func (l *oneConnListener) Close() error   { close(l.closed); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

func TestSniffHTTP2PriorKnowledge(t *testing.T) {
	client, server := tcpPair(t)
	result := sniffAsync(server, longTimeout, 0)

	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{
		Protocols:   &protos,
		DialContext: func(_ context.Context, _, _ string) (net.Conn, error) { return client, nil },
	}
	defer tr.CloseIdleConnections()
	respc := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: tr, Timeout: wait}).Get("http://svc.example/hello")
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && (resp.ProtoMajor != 2 || string(b) != "hello h2") {
				err = errors.New("got " + resp.Proto + " " + string(b) + ", want HTTP/2.0 hello h2")
			}
		}
		respc <- err
	}()

	r := result(t)
	if r.err != nil || r.p != HTTP2 {
		t.Fatalf("Sniff = %v, %v; want HTTP2, nil", r.p, r.err)
	}
	ln := &oneConnListener{conn: r.conn, closed: make(chan struct{})}
	srv := &http.Server{
		Protocols: &protos,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "hello h2")
		}),
	}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case err := <-respc:
		if err != nil {
			t.Fatalf("h2c request through sniffed conn: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("h2c request did not finish within %v", wait)
	}
}

func TestSniffTLSHandshake(t *testing.T) {
	client, server := tcpPair(t)
	cert := selfSigned(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	errc := make(chan error, 1)
	go func() {
		tc := tls.Client(client, &tls.Config{ServerName: "svc.example", RootCAs: pool})
		tc.SetDeadline(time.Now().Add(wait))
		if err := tc.Handshake(); err != nil {
			errc <- err
			return
		}
		_, err := tc.Write([]byte("ping"))
		errc <- err
	}()
	sc := sniffOK(t, server, longTimeout, 0, TLS)
	ts := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{cert}})
	buf := make([]byte, 4)
	if _, err := io.ReadFull(ts, buf); err != nil {
		t.Fatalf("TLS server over sniffed conn: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	if string(buf) != "ping" {
		t.Fatalf("got %q, want ping", buf)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "svc.example"},
		DNSNames:     []string{"svc.example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestSniffServerFirst(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	// The client sends nothing until it has read the greeting.
	sc := sniffOK(t, server, shortTimeout, 0, Unknown)

	if _, err := io.WriteString(sc, "220 mail.example ESMTP\r\n"); err != nil {
		t.Fatalf("server write: %v", err)
	}
	cr := bufio.NewReader(client)
	if line, err := cr.ReadString('\n'); err != nil || line != "220 mail.example ESMTP\r\n" {
		t.Fatalf("client read = %q, %v; want the greeting", line, err)
	}
	// Sent after the timeout: must reach the server through Conn, the
	// read deadline cleared.
	if _, err := io.WriteString(client, "EHLO client.example\r\n"); err != nil {
		t.Fatalf("client write: %v", err)
	}
	client.CloseWrite()
	got, err := io.ReadAll(sc)
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	if string(got) != "EHLO client.example\r\n" {
		t.Fatalf("server got %q, want the EHLO line", got)
	}
	if err := sc.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if rest, err := io.ReadAll(cr); err != nil || len(rest) != 0 {
		t.Fatalf("client after server CloseWrite = %q, %v; want EOF", rest, err)
	}
}

func TestSniffPartialThenStall(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(client, "GE"); err != nil {
		t.Fatal(err)
	}
	sc := sniffOK(t, server, shortTimeout, 0, Unknown)
	io.WriteString(client, "T / HTTP/1.1\r\n\r\n")
	client.CloseWrite()
	got, err := io.ReadAll(sc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("got %q, want the whole request", got)
	}
}

func TestSniffEOFBeforeAnything(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	client.CloseWrite()
	sc := sniffOK(t, server, longTimeout, 0, Unknown)
	if n, err := sc.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read = %d, %v; want 0, EOF", n, err)
	}
	// Half-closed: the server can still answer.
	io.WriteString(sc, "bye")
	sc.Close()
	if got, err := io.ReadAll(client); err != nil || string(got) != "bye" {
		t.Fatalf("client read = %q, %v; want bye", got, err)
	}
}

func TestSniffEOFAfterPartial(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	io.WriteString(client, "GET /")
	client.CloseWrite()
	sc := sniffOK(t, server, longTimeout, 0, Unknown)
	if got, err := io.ReadAll(sc); err != nil || string(got) != "GET /" {
		t.Fatalf("ReadAll = %q, %v; want GET /", got, err)
	}
}

func TestSniffMaxBytes(t *testing.T) {
	client, server := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	want := "GET /" + strings.Repeat("a", 3*MaxLine) + " HTTP/1.1\r\n\r\n"
	go func() { io.WriteString(client, want); client.CloseWrite() }()
	sc := sniffOK(t, server, longTimeout, 100, Unknown)
	if got, err := io.ReadAll(sc); err != nil || string(got) != want {
		t.Fatalf("ReadAll = %d bytes, %v; want %d bytes intact", len(got), err, len(want))
	}
}

// TestSniffRelay copies a sniffed connection to another TCP connection with
// io.Copy (WriteTo, then ReadFrom on the socket) and checks every byte.
func TestSniffRelay(t *testing.T) {
	client, server := tcpPair(t)
	upClient, upServer := tcpPair(t)
	client.SetDeadline(time.Now().Add(wait))
	upServer.SetDeadline(time.Now().Add(wait))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	go func() { client.Write(payload); client.CloseWrite() }()
	sc := sniffOK(t, server, longTimeout, 0, Unknown)
	go func() {
		io.Copy(upClient, sc)
		upClient.CloseWrite()
	}()
	got, err := io.ReadAll(upServer)
	if err != nil {
		t.Fatalf("upstream read: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("upstream got %d bytes, want the %d sent intact", len(got), len(payload))
	}

	// And the other way, with the sniffed Conn as io.Copy's destination.
	go func() { upServer.Write([]byte("reply")); upServer.CloseWrite() }()
	if _, err := io.Copy(sc, upClient); err != nil {
		t.Fatalf("copy to sniffed conn: %v", err)
	}
	sc.CloseWrite()
	if b, err := io.ReadAll(client); err != nil || string(b) != "reply" {
		t.Fatalf("client read = %q, %v; want reply", b, err)
	}
}

func TestSniffReadError(t *testing.T) {
	client, server := tcpPair(t)
	client.SetLinger(0)
	client.Close() // RST
	r := sniffAsync(server, longTimeout, 0)(t)
	// A reset may be seen as a read error or, on some kernels, as EOF.
	if r.err == nil && r.p != Unknown {
		t.Fatalf("Sniff = %v, %v; want an error or Unknown", r.p, r.err)
	}
	if r.err != nil && r.conn != nil {
		t.Fatalf("Sniff returned a Conn with error %v", r.err)
	}
}
