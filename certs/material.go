package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Material is CA key material in the layout cert-manager writes into a
// Secret: tls.crt (issuing certificate first, then any intermediates),
// tls.key (its private key) and ca.crt (the trusted roots, one or more).
type Material struct {
	TLSCrt []byte
	TLSKey []byte
	CACrt  []byte
}

// File and Secret keys of Material.
const (
	KeyTLSCrt = "tls.crt"
	KeyTLSKey = "tls.key"
	KeyCACrt  = "ca.crt"
)

// ErrNotFound is returned by Store.Load when there is no CA yet.
var ErrNotFound = errors.New("CA material not found")

// ErrExists is returned by Store.Create when another writer created the CA
// first (for example another control-plane replica).
var ErrExists = errors.New("CA material already exists")

// Store persists CA material: a directory in local mode, a Kubernetes
// Secret in a cluster.
type Store interface {
	// Load returns the stored material or an error wrapping ErrNotFound.
	Load(ctx context.Context) (*Material, error)
	// Create stores m if nothing is stored yet, else returns ErrExists.
	Create(ctx context.Context, m *Material) error
}

// LoadOrCreate loads the CA material from s, creating a self-signed root on
// first start. Two callers racing converge on whichever root was stored
// first. It reports whether this call created the root.
func LoadOrCreate(ctx context.Context, s Store, td spiffeid.TrustDomain, clock Clock) (*Material, bool, error) {
	m, err := s.Load(ctx)
	if err == nil {
		return m, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	root, err := NewRoot(td, 0, clock)
	if err != nil {
		return nil, false, err
	}
	switch err := s.Create(ctx, root); {
	case err == nil:
		return root, true, nil
	case errors.Is(err, ErrExists):
		m, err := s.Load(ctx)
		return m, false, err
	default:
		return nil, false, err
	}
}

// DirStore keeps Material as tls.crt, tls.key (mode 0600) and ca.crt in a
// directory, the layout of `--state-dir` in local mode.
type DirStore struct{ Dir string }

var _ Store = DirStore{}

// Load reads the three files.
func (d DirStore) Load(context.Context) (*Material, error) {
	var m Material
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{KeyTLSCrt, &m.TLSCrt}, {KeyTLSKey, &m.TLSKey}, {KeyCACrt, &m.CACrt}} {
		b, err := os.ReadFile(filepath.Join(d.Dir, f.name))
		if errors.Is(err, os.ErrNotExist) {
			if f.name == KeyCACrt {
				continue // a self-signed tls.crt is its own root
			}
			return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		if err != nil {
			return nil, fmt.Errorf("load CA: %w", err)
		}
		*f.dst = b
	}
	return &m, nil
}

// Create writes the files; tls.crt is written last with O_EXCL so that a
// concurrent Create fails with ErrExists.
func (d DirStore) Create(_ context.Context, m *Material) error {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("create CA dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, KeyTLSCrt)); err == nil {
		return ErrExists
	}
	if err := os.WriteFile(filepath.Join(d.Dir, KeyTLSKey), m.TLSKey, 0o600); err != nil {
		return fmt.Errorf("write CA key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, KeyCACrt), m.CACrt, 0o644); err != nil {
		return fmt.Errorf("write CA bundle: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(d.Dir, KeyTLSCrt), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("write CA certificate: %w", err)
	}
	if _, err := f.Write(m.TLSCrt); err != nil {
		f.Close()
		return fmt.Errorf("write CA certificate: %w", err)
	}
	return f.Close()
}

// ParseCertificatesPEM parses every CERTIFICATE block in b. Other block
// types are an error; empty input gives an empty list.
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
}

// EncodeCertificatesPEM encodes certs as concatenated CERTIFICATE blocks.
func EncodeCertificatesPEM(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ParsePrivateKeyPEM parses an EC, PKCS#1 RSA or PKCS#8 private key.
func ParsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
}

// EncodePrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" block.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
