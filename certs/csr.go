package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MaxCSRSize bounds the DER size of a CSR we are willing to parse. A P-256
// CSR with no extensions is about 200 bytes; anything near this limit is
// hostile or broken.
const MaxCSRSize = 4096

// ErrBadCSR is wrapped by every error ParseCSR returns, so callers can map it
// to an "invalid argument" answer.
var ErrBadCSR = errors.New("bad certificate signing request")

// ParseCSR parses a DER (or PEM "CERTIFICATE REQUEST") CSR and checks that it
// is acceptable for an SVID: well formed, self-signed correctly, and for an
// ECDSA P-256 key. Names in the CSR are ignored, never rejected: the identity
// always comes from the caller of CA.Sign.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadCSR)
	}
	if len(data) > MaxCSRSize*2 {
		return nil, fmt.Errorf("%w: %d bytes is more than the %d allowed", ErrBadCSR, len(data), MaxCSRSize)
	}
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block %q, want CERTIFICATE REQUEST", ErrBadCSR, block.Type)
		}
		der = block.Bytes
	}
	if len(der) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes is more than the %d allowed", ErrBadCSR, len(der), MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: public key is %T, want ECDSA P-256", ErrBadCSR, csr.PublicKey)
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: curve %s, want P-256", ErrBadCSR, pub.Curve.Params().Name)
	}
	return csr, nil
}

// NewKey generates an ECDSA P-256 private key, the only key type of the
// SVID profile.
func NewKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate P-256 key: %w", err)
	}
	return k, nil
}

// NewCSR returns a DER CSR for key. The CSR carries no names: the control
// plane decides the identity.
func NewCSR(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return der, nil
}
