package certs_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

var (
	td    = certstest.TrustDomain
	epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func mustCSR(t testing.TB, tmpl *x509.CertificateRequest) (*ecdsa.PrivateKey, *x509.CertificateRequest) {
	t.Helper()
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := certs.ParseCSR(der)
	if err != nil {
		t.Fatalf("ParseCSR: %v", err)
	}
	return key, csr
}

func workloadID(t testing.TB, ns, sa string) spiffeid.ID {
	t.Helper()
	id, err := certs.WorkloadID(td, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSVIDProfile(t *testing.T) {
	clock := certstest.NewClock(epoch)
	ca, _ := certstest.NewCA(t, clock, certs.Options{})
	_, csr := mustCSR(t, nil)
	id := workloadID(t, "shop", "cart")
	chain, err := ca.Sign(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 1 {
		t.Fatalf("chain length = %d, want 1 (leaf only under a root)", len(chain))
	}
	leaf := chain[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"URI SANs", len(leaf.URIs), 1},
		{"URI SAN", leaf.URIs[0].String(), "spiffe://cluster.local/ns/shop/sa/cart"},
		{"DNS SANs", len(leaf.DNSNames), 0},
		{"IP SANs", len(leaf.IPAddresses), 0},
		{"email SANs", len(leaf.EmailAddresses), 0},
		{"subject", leaf.Subject.String(), ""},
		{"IsCA", leaf.IsCA, false},
		{"BasicConstraintsValid", leaf.BasicConstraintsValid, true},
		{"KeyUsage", leaf.KeyUsage, x509.KeyUsageDigitalSignature},
		{"ExtKeyUsage", len(leaf.ExtKeyUsage), 2},
		{"serverAuth", leaf.ExtKeyUsage[0], x509.ExtKeyUsageServerAuth},
		{"clientAuth", leaf.ExtKeyUsage[1], x509.ExtKeyUsageClientAuth},
		{"NotBefore", leaf.NotBefore, epoch.Add(-certs.DefaultBackdate)},
		{"NotAfter", leaf.NotAfter, epoch.Add(24 * time.Hour)},
		{"public key algorithm", leaf.PublicKeyAlgorithm, x509.ECDSA},
		{"curve", leaf.PublicKey.(*ecdsa.PublicKey).Curve, elliptic.P256()},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if leaf.SerialNumber.BitLen() < 64 {
		t.Errorf("serial has %d bits, want a random 128-bit serial", leaf.SerialNumber.BitLen())
	}
	sanOID := asn1.ObjectIdentifier{2, 5, 29, 17}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(sanOID) && !ext.Critical {
			t.Errorf("SAN extension not critical although the subject is empty")
		}
	}
	// go-spiffe agrees it is a valid X.509-SVID for that ID.
	got, _, err := x509svid.Verify(chain, ca.Bundle(), x509svid.WithTime(epoch))
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if got != id {
		t.Errorf("verified ID = %s, want %s", got, id)
	}
}

func TestLifetimeConfigurableAndCappedByIssuer(t *testing.T) {
	clock := certstest.NewClock(epoch)
	ca, _ := certstest.NewCA(t, clock, certs.Options{TTL: time.Hour, Backdate: -1})
	_, csr := mustCSR(t, nil)
	chain, err := ca.Sign(csr, workloadID(t, "a", "b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := chain[0].NotAfter, epoch.Add(time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter = %s, want %s", got, want)
	}
	if got := chain[0].NotBefore; !got.Equal(epoch) {
		t.Errorf("NotBefore = %s, want %s (backdate disabled)", got, epoch)
	}
	// Near the end of the issuer's life an SVID is cut short, never longer.
	clock.Set(ca.Issuer().NotAfter.Add(-time.Hour))
	chain, err = ca.Sign(csr, workloadID(t, "a", "b"), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := chain[0].NotAfter, ca.Issuer().NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter = %s, want the issuer's %s", got, want)
	}
	clock.Set(ca.Issuer().NotAfter.Add(time.Second))
	if _, err := ca.Sign(csr, workloadID(t, "a", "b"), 0); err == nil {
		t.Error("Sign with an expired issuer succeeded, want an error")
	}
}

// A CSR may ask for any name it likes; the SVID carries only the identity
// the control plane chose.
func TestCSRNamesAreIgnored(t *testing.T) {
	ca, _ := certstest.NewCA(t, nil, certs.Options{})
	evil, _ := url.Parse("spiffe://cluster.local/ns/kube-system/sa/admin")
	other, _ := url.Parse("spiffe://evil.example/ns/x/sa/y")
	_, csr := mustCSR(t, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		URIs:           []*url.URL{evil, other},
		DNSNames:       []string{"kubernetes.default.svc"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1")},
		EmailAddresses: []string{"root@example.com"},
	})
	want := workloadID(t, "shop", "cart")
	chain, err := ca.Sign(csr, want, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := chain[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want.String() {
		t.Errorf("URIs = %v, want only %s", leaf.URIs, want)
	}
	if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || leaf.Subject.String() != "" {
		t.Errorf("names from the CSR leaked into the SVID: subject %q DNS %v IP %v email %v",
			leaf.Subject, leaf.DNSNames, leaf.IPAddresses, leaf.EmailAddresses)
	}
}

func TestSignRefusesForeignTrustDomain(t *testing.T) {
	ca, _ := certstest.NewCA(t, nil, certs.Options{})
	_, csr := mustCSR(t, nil)
	if _, err := ca.Sign(csr, spiffeid.RequireFromString("spiffe://other.domain/ns/a/sa/b"), 0); err == nil {
		t.Error("signed an ID of another trust domain")
	}
}

func TestVerificationFailures(t *testing.T) {
	clock := certstest.NewClock(epoch)
	ca, _ := certstest.NewCA(t, clock, certs.Options{})
	foreign, _ := certstest.NewCA(t, clock, certs.Options{})
	_, csr := mustCSR(t, nil)
	id := workloadID(t, "a", "b")
	good, err := ca.Sign(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := foreign.Sign(csr, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chain []*x509.Certificate
		at    time.Time
		ok    bool
	}{
		{"valid", good, epoch, true},
		{"expired", good, epoch.Add(24*time.Hour + time.Second), false},
		{"not yet valid", good, epoch.Add(-time.Hour), false},
		{"foreign CA with the same trust domain and ID", bad, epoch, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := x509svid.Verify(tc.chain, ca.Bundle(), x509svid.WithTime(tc.at))
			if (err == nil) != tc.ok {
				t.Errorf("Verify error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestIntermediateUnderOfflineRoot(t *testing.T) {
	clock := certstest.NewClock(epoch)
	root, err := certs.NewRoot(td, 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := certs.NewIntermediate(td, root, 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := certs.New(td, inter, certs.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	_, csr := mustCSR(t, nil)
	chain, err := ca.Sign(csr, workloadID(t, "a", "b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 {
		t.Fatalf("chain length = %d, want leaf + intermediate", len(chain))
	}
	rootOnly, err := certs.ParseCertificatesPEM(root.TLSCrt)
	if err != nil {
		t.Fatal(err)
	}
	// A peer that trusts only the offline root verifies the chain.
	if _, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, rootOnly), x509svid.WithTime(epoch)); err != nil {
		t.Errorf("verify against the offline root: %v", err)
	}
	// Without the intermediate in the chain it does not.
	if _, _, err := x509svid.Verify(chain[:1], ca.Bundle(), x509svid.WithTime(epoch)); err == nil {
		t.Error("leaf without its intermediate verified")
	}
	if got := ca.Bundle().X509Authorities(); len(got) != 1 || !got[0].Equal(rootOnly[0]) {
		t.Errorf("bundle = %d roots, want the offline root only", len(got))
	}
}

func TestNewRejectsBadMaterial(t *testing.T) {
	clock := certstest.NewClock(epoch)
	a, err := certs.NewRoot(td, 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	b, err := certs.NewRoot(td, 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := certs.NewIntermediate(td, a, 0, clock)
	if err != nil {
		t.Fatal(err)
	}
	// A leaf is not a CA.
	ca, _ := certstest.NewCA(t, clock, certs.Options{})
	key, csr := mustCSR(t, nil)
	leaf, err := ca.Sign(csr, workloadID(t, "a", "b"), 0)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := certs.EncodePrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    certs.Material
	}{
		{"key of another root", certs.Material{TLSCrt: a.TLSCrt, TLSKey: b.TLSKey}},
		{"intermediate with a foreign ca.crt", certs.Material{TLSCrt: inter.TLSCrt, TLSKey: inter.TLSKey, CACrt: b.CACrt}},
		{"intermediate with no ca.crt", certs.Material{TLSCrt: inter.TLSCrt, TLSKey: inter.TLSKey}},
		{"a leaf certificate", certs.Material{TLSCrt: certs.EncodeCertificatesPEM(leaf), TLSKey: leafKey, CACrt: a.CACrt}},
		{"garbage", certs.Material{TLSCrt: []byte("hello"), TLSKey: a.TLSKey}},
		{"empty", certs.Material{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := certs.New(td, &tc.m, certs.Options{Clock: clock}); err == nil {
				t.Error("New accepted bad material")
			}
		})
	}
}

func TestParseCSRRejects(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsaKey)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384CSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p384)
	key, _ := certs.NewKey()
	good, _ := certs.NewCSR(key)
	tampered := append([]byte(nil), good...)
	tampered[len(tampered)-5] ^= 0xff
	tests := []struct {
		name string
		der  []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not a csr")},
		{"RSA key", rsaCSR},
		{"P-384 key", p384CSR},
		{"bad signature", tampered},
		{"oversized", make([]byte, certs.MaxCSRSize+1)},
		{"PEM of the wrong type", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := certs.ParseCSR(tc.der)
			if !errors.Is(err, certs.ErrBadCSR) {
				t.Errorf("ParseCSR error = %v, want ErrBadCSR", err)
			}
		})
	}
	if _, err := certs.ParseCSR(good); err != nil {
		t.Errorf("ParseCSR(good) = %v", err)
	}
}

func TestDirStoreLoadOrCreate(t *testing.T) {
	dir := t.TempDir()
	s := certs.DirStore{Dir: dir}
	ctx := context.Background()
	m1, created, err := certs.LoadOrCreate(ctx, s, td, nil)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate = created %v, %v; want a new root", created, err)
	}
	m2, created, err := certs.LoadOrCreate(ctx, s, td, nil)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate = created %v, %v; want the stored root", created, err)
	}
	if string(m1.TLSCrt) != string(m2.TLSCrt) || string(m1.TLSKey) != string(m2.TLSKey) {
		t.Error("second start got a different root")
	}
	if err := s.Create(ctx, m1); !errors.Is(err, certs.ErrExists) {
		t.Errorf("Create over an existing CA = %v, want ErrExists", err)
	}
	if _, err := certs.New(td, m2, certs.Options{}); err != nil {
		t.Errorf("stored material does not load: %v", err)
	}
}

func TestIDs(t *testing.T) {
	n, err := certs.NodeID(td, "node-a")
	if err != nil || n.String() != "spiffe://cluster.local/weft/node/node-a" {
		t.Errorf("NodeID = %s, %v", n, err)
	}
	if name, ok := certs.NodeFromID(n); !ok || name != "node-a" {
		t.Errorf("NodeFromID = %q, %v", name, ok)
	}
	w := workloadID(t, "shop", "")
	if w.String() != "spiffe://cluster.local/ns/shop/sa/default" {
		t.Errorf("WorkloadID with no SA = %s, want the default SA", w)
	}
	if _, ok := certs.NodeFromID(w); ok {
		t.Error("a workload ID parsed as a node ID")
	}
	if ns, sa, ok := certs.WorkloadFromID(w); !ok || ns != "shop" || sa != "default" {
		t.Errorf("WorkloadFromID = %q %q %v", ns, sa, ok)
	}
	if _, err := certs.WorkloadID(td, "Bad Name", "x"); err == nil {
		t.Error("WorkloadID accepted an invalid path segment")
	}
}

func BenchmarkSign(b *testing.B) {
	ca, _ := certstest.NewCA(b, nil, certs.Options{})
	key, _ := certs.NewKey()
	der, _ := certs.NewCSR(key)
	id := workloadID(b, "bench", "default")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		csr, err := certs.ParseCSR(der)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ca.Sign(csr, id, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
}
