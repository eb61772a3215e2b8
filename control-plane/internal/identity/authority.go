package identity

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/certs"
)

// Authority holds the CA currently in force and tells watchers when it
// changes (a new issuer or a new set of roots). It is safe for concurrent use.
type Authority struct {
	mu      sync.Mutex // guards the fields below
	ca      *certs.CA
	current *certs.Material
	changed chan struct{} // closed and replaced on every change
}

// NewAuthority returns an Authority serving ca, built from m.
func NewAuthority(ca *certs.CA, m *certs.Material) *Authority {
	return &Authority{ca: ca, current: m, changed: make(chan struct{})}
}

// CA returns the CA in force.
func (a *Authority) CA() *certs.CA {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ca
}

// TrustDomain is the trust domain of the CA.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.CA().TrustDomain() }

// GetX509BundleForTrustDomain implements x509bundle.Source with the current
// roots, so TLS verification follows rotations.
func (a *Authority) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return a.CA().Bundle().GetX509BundleForTrustDomain(td)
}

// Changed returns a channel closed at the next change, and the CA in force
// now; call again after it fires.
func (a *Authority) Changed() (<-chan struct{}, *certs.CA) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.changed, a.ca
}

// Update installs new material if it differs from the current one. Bad
// material is refused with an error and the current CA stays in force.
func (a *Authority) Update(m *certs.Material, opts certs.Options) (bool, error) {
	a.mu.Lock()
	same := a.current != nil && bytes.Equal(a.current.TLSCrt, m.TLSCrt) &&
		bytes.Equal(a.current.TLSKey, m.TLSKey) && bytes.Equal(a.current.CACrt, m.CACrt)
	td := a.ca.TrustDomain()
	a.mu.Unlock()
	if same {
		return false, nil
	}
	ca, err := certs.New(td, m, opts)
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ca, a.current = ca, m
	close(a.changed)
	a.changed = make(chan struct{})
	return true, nil
}

// Reload polls store every interval and installs changed material until ctx
// ends. This is how a root rotation or an operator-supplied CA update
// reaches a running control plane without a restart.
func (a *Authority) Reload(ctx context.Context, store certs.Store, interval time.Duration, opts certs.Options, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m, err := store.Load(ctx)
		if err != nil {
			log.Warn("reload CA", "err", err)
			continue
		}
		changed, err := a.Update(m, opts)
		switch {
		case err != nil:
			log.Error("reloaded CA material is invalid; keeping the current CA", "err", err)
		case changed:
			ca := a.CA()
			log.Info("CA reloaded", "issuer", ca.Issuer().Subject.String(), "roots", len(ca.Bundle().X509Authorities()))
		}
	}
}

// String describes the CA for logs.
func (a *Authority) String() string {
	ca := a.CA()
	return fmt.Sprintf("issuer %q, %d root(s)", ca.Issuer().Subject.String(), len(ca.Bundle().X509Authorities()))
}
