// Package certstest provides test doubles for code that uses certs: a fake
// clock that only moves when told, and a real CA with a throwaway key.
// It is for tests only; production code never imports it.
package certstest

import (
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
)

// Clock is a certs.Clock that stands still until Advance or Set moves it.
type Clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

var _ certs.Clock = (*Clock)(nil)

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// TrustDomain is the trust domain test CAs issue in.
var TrustDomain = spiffeid.RequireTrustDomainFromString("cluster.local")

// NewCA returns a real CA with a freshly generated self-signed root in
// TrustDomain, using clock (nil means the system clock), and its material.
func NewCA(t testing.TB, clock certs.Clock, opts certs.Options) (*certs.CA, *certs.Material) {
	t.Helper()
	m, err := certs.NewRoot(TrustDomain, 0, clock)
	if err != nil {
		t.Fatalf("new root: %v", err)
	}
	opts.Clock = clock
	ca, err := certs.New(TrustDomain, m, opts)
	if err != nil {
		t.Fatalf("new CA: %v", err)
	}
	return ca, m
}

// SVID issues an X.509 SVID for id from ca, with a fresh key.
func SVID(t testing.TB, ca *certs.CA, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	key, err := certs.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := certs.NewCSR(key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := certs.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.Sign(csr, id, 0)
	if err != nil {
		t.Fatalf("sign %s: %v", id, err)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// NodeSVID issues the node SVID of node from ca.
func NodeSVID(t testing.TB, ca *certs.CA, node string) *x509svid.SVID {
	t.Helper()
	id, err := certs.NodeID(ca.TrustDomain(), node)
	if err != nil {
		t.Fatal(err)
	}
	return SVID(t, ca, id)
}
