package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// alpnH2 is the only application protocol a tunnel speaks.
const alpnH2 = "h2"

// Handshake failure reasons, the reason label of
// weft_tunnel_handshake_failures_total.
const (
	hsNoCertificate  = "no_certificate"
	hsBadCertificate = "bad_certificate"
	hsWrongIdentity  = "wrong_identity"
	hsNoALPN         = "no_alpn"
	hsPreface        = "bad_preface"
	hsTimeout        = "timeout"
	hsTLS            = "tls"
)

var handshakeReasons = []string{hsNoCertificate, hsBadCertificate, hsWrongIdentity, hsNoALPN, hsPreface, hsTimeout, hsTLS}

// handshakeError is a handshake we refused, with the reason we count it by.
type handshakeError struct {
	reason string
	err    error
}

func (e *handshakeError) Error() string { return e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// handshakeReason classifies a failed handshake for the metrics.
func handshakeReason(err error) string {
	var he *handshakeError
	var ne net.Error
	switch {
	case errors.As(err, &he):
		return he.reason
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return hsTimeout
	default:
		return hsTLS
	}
}

// tlsCertificate presents an SVID in a handshake.
func tlsCertificate(s *x509svid.SVID) (*tls.Certificate, error) {
	if s == nil || len(s.Certificates) == 0 || s.PrivateKey == nil {
		return nil, errors.New("no SVID to present")
	}
	c := &tls.Certificate{
		Certificate: make([][]byte, len(s.Certificates)),
		PrivateKey:  s.PrivateKey,
		Leaf:        s.Certificates[0],
	}
	for i, x := range s.Certificates {
		c.Certificate[i] = x.Raw
	}
	return c, nil
}

// baseTLSConfig is what both sides share: TLS 1.3 only, h2, full-size
// records from the first byte, and no session resumption. Resumption is
// off because a resumed session skips certificate verification callbacks
// in some paths and carries the identity of an earlier handshake; pooling
// makes full handshakes rare anyway.
func baseTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:                  tls.VersionTLS13,
		NextProtos:                  []string{alpnH2},
		DynamicRecordSizingDisabled: true,
		SessionTicketsDisabled:      true,
	}
}

// serverTLSConfig verifies the client's X.509-SVID against bundle (any
// identity: authorization is per stream) and presents the SVID certFor
// picks for the connection.
func serverTLSConfig(certFor func(ConnInfo) (*x509svid.SVID, error), bundle x509bundle.Source) *tls.Config {
	cfg := baseTLSConfig()
	cfg.ClientAuth = tls.RequestClientCert // verified in VerifyConnection
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		info := ConnInfo{ServerName: hello.ServerName}
		if hello.Conn != nil {
			info.Local = addrPort(hello.Conn.LocalAddr())
			info.Remote = addrPort(hello.Conn.RemoteAddr())
		}
		svid, err := certFor(info)
		if err != nil {
			return nil, fmt.Errorf("certificate for %s: %w", info.Local, err)
		}
		return tlsCertificate(svid)
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &handshakeError{hsNoCertificate, errors.New("client presented no certificate")}
		}
		if _, _, err := x509svid.Verify(cs.PeerCertificates, bundle); err != nil {
			return &handshakeError{hsBadCertificate, fmt.Errorf("verify client: %w", err)}
		}
		if cs.NegotiatedProtocol != alpnH2 {
			return &handshakeError{hsNoALPN, errors.New("client did not negotiate h2")}
		}
		return nil
	}
	return cfg
}

// clientTLSConfig presents src and accepts only a server that proves want
// under bundle.
func clientTLSConfig(src *x509svid.SVID, bundle x509bundle.Source, want spiffeid.ID) *tls.Config {
	cfg := baseTLSConfig()
	// The server is verified below against the SPIFFE bundle and the
	// expected ID; there is no host name to check.
	cfg.InsecureSkipVerify = true
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return tlsCertificate(src)
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		got, _, err := x509svid.Verify(cs.PeerCertificates, bundle)
		if err != nil {
			return &handshakeError{hsBadCertificate, fmt.Errorf("verify server: %w", err)}
		}
		if got != want {
			return &handshakeError{hsWrongIdentity, &IdentityError{Want: want, Got: got}}
		}
		if cs.NegotiatedProtocol != alpnH2 {
			return &handshakeError{hsNoALPN, errors.New("server did not negotiate h2")}
		}
		return nil
	}
	return cfg
}

// rawConn sits under tls.Conn. While the writer flushes a batch it
// collects the TLS records instead of writing each one, so a batch of any
// size leaves in one write(2). Outside a batch (handshake, alerts, a TLS
// 1.3 KeyUpdate answered by the reader) it writes through.
type rawConn struct {
	net.Conn
	mu       sync.Mutex // guards the fields below and serializes writes to Conn
	batching bool
	buf      []byte
}

func (r *rawConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.batching {
		r.buf = append(r.buf, p...)
		return len(p), nil
	}
	return r.Conn.Write(p)
}

func (r *rawConn) startBatch() {
	r.mu.Lock()
	r.batching = true
	r.mu.Unlock()
}

// flush ends the batch and writes it.
func (r *rawConn) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batching = false
	if len(r.buf) == 0 {
		return nil
	}
	_, err := r.Conn.Write(r.buf)
	if cap(r.buf) > maxKeptBuffer+maxKeptBuffer/4 {
		r.buf = nil
	} else {
		r.buf = r.buf[:0]
	}
	return err
}

// tcpKeepAlive is the TCP keepalive of tunnel connections. HTTP/2 PINGs
// detect a dead peer sooner; this catches a connection with PINGs off.
var tcpKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3}

func setKeepAlive(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(tcpKeepAlive)
	}
}

// addrPort converts a TCP address; anything else is the zero AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
