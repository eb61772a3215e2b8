package certs

import (
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// BundleFromDER builds a trust bundle from DER roots, as they travel in the
// identity API and over xDS.
func BundleFromDER(td spiffeid.TrustDomain, roots [][]byte) (*x509bundle.Bundle, error) {
	b := x509bundle.New(td)
	for i, der := range roots {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("trust bundle root %d: %w", i, err)
		}
		b.AddX509Authority(c)
	}
	if b.Empty() {
		return nil, fmt.Errorf("trust bundle for %s is empty", td)
	}
	return b, nil
}

// BundleDER returns the roots of b in DER form.
func BundleDER(b *x509bundle.Bundle) [][]byte {
	roots := b.X509Authorities()
	out := make([][]byte, len(roots))
	for i, r := range roots {
		out[i] = r.Raw
	}
	return out
}

// CertsDER returns the DER form of a chain.
func CertsDER(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, len(chain))
	for i, c := range chain {
		out[i] = c.Raw
	}
	return out
}

// ParseDERChain parses a chain of DER certificates, leaf first.
func ParseDERChain(ders [][]byte) ([]*x509.Certificate, error) {
	if len(ders) == 0 {
		return nil, fmt.Errorf("empty certificate chain")
	}
	out := make([]*x509.Certificate, len(ders))
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of chain: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}
