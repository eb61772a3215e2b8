package identity

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
)

// ServerTLS returns the TLS configuration of port 15012. The control plane
// presents an SVID for spiffe://<td>/weft/control-plane from its own CA,
// reissued at half-life or when the CA changes. A client certificate is
// optional at the TLS layer (BootstrapNode callers have none yet) but, when
// presented, must verify against the trust bundle in force; each RPC then
// decides whether it needs one.
func ServerTLS(a *Authority, clock certs.Clock) *tls.Config {
	if clock == nil {
		clock = certs.SystemClock{}
	}
	sc := &servingCert{authority: a, clock: clock}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return sc.get() },
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return nil
			}
			_, _, err := x509svid.ParseAndVerify(raw, a)
			return err
		},
	}
}

// servingCert caches the control plane's own certificate.
type servingCert struct {
	authority *Authority
	clock     certs.Clock

	mu     sync.Mutex // guards the fields below
	cert   *tls.Certificate
	issuer *x509.Certificate
}

func (s *servingCert) get() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ca := s.authority.CA()
	now := s.clock.Now()
	if s.cert != nil && s.issuer == ca.Issuer() {
		leaf := s.cert.Leaf
		if now.Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)) {
			return s.cert, nil
		}
	}
	key, err := certs.NewKey()
	if err != nil {
		return nil, err
	}
	der, err := certs.NewCSR(key)
	if err != nil {
		return nil, err
	}
	csr, err := certs.ParseCSR(der)
	if err != nil {
		return nil, err
	}
	chain, err := ca.Sign(csr, certs.ControlPlaneID(ca.TrustDomain()), 0)
	if err != nil {
		return nil, fmt.Errorf("control-plane serving certificate: %w", err)
	}
	s.cert = &tls.Certificate{Certificate: certs.CertsDER(chain), PrivateKey: key, Leaf: chain[0]}
	s.issuer = ca.Issuer()
	return s.cert, nil
}
