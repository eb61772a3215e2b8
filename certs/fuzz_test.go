package certs_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

// FuzzParseCSR feeds arbitrary bytes to the CSR checks and, when they pass,
// signs them: nothing may panic, every refusal wraps ErrBadCSR, and an
// accepted CSR yields exactly the identity we chose.
func FuzzParseCSR(f *testing.F) {
	key, _ := certs.NewKey()
	plain, _ := certs.NewCSR(key)
	evil, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	named, _ := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "x"}, URIs: []*url.URL{evil}, DNSNames: []string{"a.b"}}, key)
	f.Add(plain)
	f.Add(named)
	f.Add([]byte{})
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add(plain[:len(plain)/2])
	ca, _ := certstest.NewCA(f, nil, certs.Options{})
	id, _ := certs.WorkloadID(certstest.TrustDomain, "fuzz", "sa")
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := certs.ParseCSR(data)
		if err != nil {
			if !errors.Is(err, certs.ErrBadCSR) {
				t.Fatalf("refusal does not wrap ErrBadCSR: %v", err)
			}
			return
		}
		chain, err := ca.Sign(csr, id, 0)
		if err != nil {
			t.Fatalf("accepted CSR failed to sign: %v", err)
		}
		got, _, err := x509svid.Verify(chain, ca.Bundle())
		if err != nil || got != id {
			t.Fatalf("signed SVID = %s, %v; want %s", got, err, id)
		}
	})
}
