// Package certstest provides test doubles for code that uses certs: a fake
// clock that only moves when told, and a real CA with a throwaway key.
// It is for tests only; production code never imports it.
package certstest

import (
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

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
