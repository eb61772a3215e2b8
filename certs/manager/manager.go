// Package manager keeps a node proxy's certificates fresh: its node SVID and
// one SVID per local workload.
//
// Keys are generated here and never leave the process; only CSRs are sent.
// Each certificate is renewed at half its lifetime, less a random jitter of
// up to JitterFraction of the lifetime, so that a node's many workloads do
// not renew at the same instant. When renewal fails the current certificate
// keeps being served while it is still valid, and renewal is retried with
// exponential backoff (MinBackoff doubling to MaxBackoff, never past expiry).
// An expired certificate is never served: Workload returns ErrExpired and
// callers fail closed.
//
// The renewal core is RenewDue, which does what is due at Clock.Now() and
// returns when it next needs to run; Run calls it on a timer. Tests drive
// RenewDue with a fake clock and never sleep.
//
// The trust bundle comes with every signing answer and from the control
// plane's bundle stream (see GRPCSigner.WatchBundle); the manager is an
// x509bundle.Source that always returns the latest.
package manager

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/weftmesh/weft/certs"
)

// PodRef names a workload.
type PodRef struct {
	Namespace, Name, UID string
}

// Key is "namespace/name".
func (p PodRef) Key() string { return p.Namespace + "/" + p.Name }

// Issued is a signing answer.
type Issued struct {
	Chain  []*x509.Certificate // leaf first
	Bundle *x509bundle.Bundle
}

// Signer gets CSRs signed by the control plane. GRPCSigner is the real one.
type Signer interface {
	BootstrapNode(ctx context.Context, csr []byte) (*Issued, error)
	SignWorkload(ctx context.Context, csr []byte, pod PodRef) (*Issued, error)
}

// ErrExpired is returned for a certificate that is known but no longer valid.
var ErrExpired = errors.New("certificate expired")

// ErrUnknown is returned for a workload the manager does not hold.
var ErrUnknown = errors.New("no certificate for this workload")

// Config configures a Manager.
type Config struct {
	// Signer gets certificates signed. Required.
	Signer Signer
	// TrustDomain of the mesh. Required.
	TrustDomain spiffeid.TrustDomain
	// Bundle is the initial trust bundle (to verify the control plane before
	// the first answer). Nil means none until the first answer.
	Bundle *x509bundle.Bundle
	// Clock; nil means the system clock.
	Clock certs.Clock
	// Log; nil means slog.Default().
	Log *slog.Logger
	// JitterFraction of the lifetime by which renewal may come early; zero
	// means 0.1, negative means no jitter.
	JitterFraction float64
	// Rand returns a number in [0,1) for jitter; nil means math/rand/v2.
	Rand func() float64
	// MinBackoff and MaxBackoff bound retries after a failed renewal; zero
	// means 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one signing call; zero means 15s.
	Timeout time.Duration
}

// entry is one certificate being kept fresh.
type entry struct {
	pod      *PodRef // nil for the node SVID
	svid     *x509svid.SVID
	renewAt  time.Time
	failures int
	lastErr  error
}

// Manager holds and renews SVIDs. It is safe for concurrent use.
type Manager struct {
	cfg  Config
	wake chan struct{}

	mu        sync.Mutex // guards the fields below
	node      *entry
	workloads map[string]*entry
	bundle    *x509bundle.Bundle
}

// New returns a Manager; call BootstrapNode, then Run.
func New(cfg Config) (*Manager, error) {
	if cfg.Signer == nil || cfg.TrustDomain.IsZero() {
		return nil, errors.New("manager: Signer and TrustDomain are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = certs.SystemClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.JitterFraction == 0 {
		cfg.JitterFraction = 0.1
	}
	if cfg.JitterFraction < 0 {
		cfg.JitterFraction = 0
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &Manager{cfg: cfg, wake: make(chan struct{}, 1), workloads: map[string]*entry{}, bundle: cfg.Bundle}, nil
}

// BootstrapNode obtains the node SVID. It must succeed before workloads can
// be added (their signing calls authenticate with it).
func (m *Manager) BootstrapNode(ctx context.Context) error {
	e := &entry{}
	if err := m.fetch(ctx, e); err != nil {
		return fmt.Errorf("bootstrap node identity: %w", err)
	}
	m.mu.Lock()
	m.node = e
	m.mu.Unlock()
	m.kick()
	return nil
}

// AddWorkload obtains an SVID for pod and keeps it fresh. A pod already
// held with a valid SVID is returned as is.
func (m *Manager) AddWorkload(ctx context.Context, pod PodRef) (*x509svid.SVID, error) {
	if s, err := m.Workload(pod.Key()); err == nil {
		return s, nil
	}
	e := &entry{pod: &pod}
	if err := m.fetch(ctx, e); err != nil {
		return nil, fmt.Errorf("workload %s: %w", pod.Key(), err)
	}
	m.mu.Lock()
	m.workloads[pod.Key()] = e
	m.mu.Unlock()
	m.kick()
	return e.svid, nil
}

// RemoveWorkload forgets a pod's SVID.
func (m *Manager) RemoveWorkload(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.workloads, key)
}

// Workload returns the pod's SVID while it is valid.
func (m *Manager) Workload(key string) (*x509svid.SVID, error) {
	m.mu.Lock()
	e := m.workloads[key]
	m.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%s: %w", key, ErrUnknown)
	}
	return m.valid(e)
}

// NodeSVID returns the node SVID while it is valid.
func (m *Manager) NodeSVID() (*x509svid.SVID, error) {
	m.mu.Lock()
	e := m.node
	m.mu.Unlock()
	if e == nil {
		return nil, errors.New("node identity not bootstrapped")
	}
	return m.valid(e)
}

// GetX509SVID implements x509svid.Source with the node SVID.
func (m *Manager) GetX509SVID() (*x509svid.SVID, error) { return m.NodeSVID() }

func (m *Manager) valid(e *entry) (*x509svid.SVID, error) {
	m.mu.Lock()
	s := e.svid
	m.mu.Unlock()
	if !m.cfg.Clock.Now().Before(s.Certificates[0].NotAfter) {
		return nil, fmt.Errorf("%s: %w at %s", s.ID, ErrExpired, s.Certificates[0].NotAfter.Format(time.RFC3339))
	}
	return s, nil
}

// Bundle returns the latest trust bundle, or nil before there is one.
func (m *Manager) Bundle() *x509bundle.Bundle {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bundle
}

// SetBundle installs a trust bundle received out of band (the bundle
// stream, or xDS). A bundle of another trust domain or an empty one is
// ignored with an error.
func (m *Manager) SetBundle(b *x509bundle.Bundle) error {
	if b == nil || b.Empty() || b.TrustDomain() != m.cfg.TrustDomain {
		return fmt.Errorf("refusing trust bundle: empty or not for %s", m.cfg.TrustDomain)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bundle = b
	return nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (m *Manager) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b := m.Bundle()
	if b == nil {
		return nil, errors.New("no trust bundle yet")
	}
	return b.GetX509BundleForTrustDomain(td)
}

// fetch generates a key, gets it signed, checks the answer and, on success,
// stores the SVID in e and schedules its renewal.
func (m *Manager) fetch(ctx context.Context, e *entry) error {
	key, err := certs.NewKey()
	if err != nil {
		return err
	}
	csr, err := certs.NewCSR(key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	var is *Issued
	if e.pod == nil {
		is, err = m.cfg.Signer.BootstrapNode(ctx, csr)
	} else {
		is, err = m.cfg.Signer.SignWorkload(ctx, csr, *e.pod)
	}
	if err != nil {
		return err
	}
	if len(is.Chain) == 0 || !key.PublicKey.Equal(is.Chain[0].PublicKey) {
		return errors.New("signed certificate does not carry our key")
	}
	if is.Bundle == nil || is.Bundle.TrustDomain() != m.cfg.TrustDomain {
		return fmt.Errorf("answer has no trust bundle for %s", m.cfg.TrustDomain)
	}
	id, _, err := x509svid.Verify(is.Chain, is.Bundle, x509svid.WithTime(m.cfg.Clock.Now()))
	if err != nil {
		return fmt.Errorf("signed certificate does not verify: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e.svid = &x509svid.SVID{ID: id, Certificates: is.Chain, PrivateKey: key}
	e.renewAt = m.renewTime(is.Chain[0])
	e.failures, e.lastErr = 0, nil
	m.bundle = is.Bundle
	return nil
}

// renewTime is half-life less jitter.
func (m *Manager) renewTime(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	early := time.Duration(m.cfg.Rand() * m.cfg.JitterFraction * float64(life))
	return leaf.NotBefore.Add(life/2 - early)
}

// backoff returns the wait before retry number n (1-based).
func (m *Manager) backoff(n int) time.Duration {
	d := m.cfg.MinBackoff
	for i := 1; i < n && d < m.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, m.cfg.MaxBackoff)
}

// RenewDue renews every certificate whose time has come, and returns when
// it should next be called (the zero time when nothing is held).
func (m *Manager) RenewDue(ctx context.Context) time.Time {
	now := m.cfg.Clock.Now()
	m.mu.Lock()
	var due []*entry
	for _, e := range m.entriesLocked() {
		if !now.Before(e.renewAt) {
			due = append(due, e)
		}
	}
	m.mu.Unlock()
	for _, e := range due {
		// The node SVID first: workload renewals authenticate with it.
		err := m.fetch(ctx, e)
		if err == nil {
			continue
		}
		m.mu.Lock()
		e.failures++
		e.lastErr = err
		wait := m.backoff(e.failures)
		if left := e.svid.Certificates[0].NotAfter.Sub(now); left > 0 && wait > left {
			wait = max(left/2, m.cfg.MinBackoff)
		}
		e.renewAt = now.Add(wait)
		attempt := e.failures
		m.mu.Unlock()
		m.cfg.Log.Warn("certificate renewal failed; serving the current one while it is valid",
			"id", e.svid.ID.String(), "attempt", attempt, "retry_in", wait, "expires", e.svid.Certificates[0].NotAfter, "err", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for _, e := range m.entriesLocked() {
		if next.IsZero() || e.renewAt.Before(next) {
			next = e.renewAt
		}
	}
	return next
}

// entriesLocked lists the node entry first, then workloads by key.
func (m *Manager) entriesLocked() []*entry {
	var out []*entry
	if m.node != nil {
		out = append(out, m.node)
	}
	keys := make([]string, 0, len(m.workloads))
	for k := range m.workloads {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, m.workloads[k])
	}
	return out
}

// Run renews certificates until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		next := m.RenewDue(ctx)
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(m.cfg.Clock.Now()), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (m *Manager) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Status describes one held certificate, for the admin endpoint.
type Status struct {
	ID        string    `json:"spiffeID"`
	Pod       string    `json:"pod,omitempty"`
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	RenewAt   time.Time `json:"renewAt"`
	Failures  int       `json:"renewalFailures,omitempty"`
	LastError string    `json:"lastError,omitempty"`
}

// Statuses lists the node SVID and every workload SVID.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, e := range m.entriesLocked() {
		st := Status{ID: e.svid.ID.String(), NotBefore: e.svid.Certificates[0].NotBefore,
			NotAfter: e.svid.Certificates[0].NotAfter, RenewAt: e.renewAt, Failures: e.failures}
		if e.pod != nil {
			st.Pod = e.pod.Key()
		}
		if e.lastErr != nil {
			st.LastError = e.lastErr.Error()
		}
		out = append(out, st)
	}
	return out
}
