package manager

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

var (
	td    = certstest.TrustDomain
	epoch = time.Date(2026, 3, 4, 5, 0, 0, 0, time.UTC)
)

// fakeSigner signs with a real CA; it can be told to fail.
type fakeSigner struct {
	ca *certs.CA

	mu    sync.Mutex // guards the fields below
	fail  error
	calls int
}

func (f *fakeSigner) sign(csrDER []byte, ns, sa string) (*Issued, error) {
	f.mu.Lock()
	f.calls++
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	csr, err := certs.ParseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	var chainErr error
	id, chainErr := certs.WorkloadID(td, ns, sa)
	if ns == "" {
		id, chainErr = certs.NodeID(td, sa)
	}
	if chainErr != nil {
		return nil, chainErr
	}
	chain, err := f.ca.Sign(csr, id, 0)
	if err != nil {
		return nil, err
	}
	return &Issued{Chain: chain, Bundle: f.ca.Bundle()}, nil
}

func (f *fakeSigner) BootstrapNode(_ context.Context, csr []byte) (*Issued, error) {
	return f.sign(csr, "", "node-a")
}

func (f *fakeSigner) SignWorkload(_ context.Context, csr []byte, pod PodRef) (*Issued, error) {
	return f.sign(csr, pod.Namespace, pod.Name)
}

func (f *fakeSigner) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeSigner) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func newTest(t *testing.T, jitter float64) (*Manager, *fakeSigner, *certstest.Clock) {
	t.Helper()
	clock := certstest.NewClock(epoch)
	ca, _ := certstest.NewCA(t, clock, certs.Options{Backdate: -1})
	fs := &fakeSigner{ca: ca}
	m, err := New(Config{Signer: fs, TrustDomain: td, Clock: clock, Rand: func() float64 { return jitter }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.BootstrapNode(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m, fs, clock
}

func TestRenewAtHalfLife(t *testing.T) {
	m, fs, clock := newTest(t, 0)
	ctx := context.Background()
	pod := PodRef{Namespace: "shop", Name: "cart"}
	first, err := m.AddWorkload(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := first.ID.String(), "spiffe://cluster.local/ns/shop/sa/cart"; got != want {
		t.Fatalf("ID = %s, want %s", got, want)
	}
	calls := fs.count() // node + workload
	next := m.RenewDue(ctx)
	if want := epoch.Add(12 * time.Hour); !next.Equal(want) {
		t.Fatalf("next renewal = %s, want half-life %s", next, want)
	}
	clock.Set(next.Add(-time.Second))
	m.RenewDue(ctx)
	if fs.count() != calls {
		t.Fatalf("renewed %d certificates before half-life", fs.count()-calls)
	}
	clock.Set(next)
	next = m.RenewDue(ctx)
	if got := fs.count() - calls; got != 2 {
		t.Fatalf("at half-life renewed %d certificates, want 2 (node and workload)", got)
	}
	renewed, err := m.Workload(pod.Key())
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Certificates[0].SerialNumber.Cmp(first.Certificates[0].SerialNumber) == 0 {
		t.Fatal("workload certificate not replaced")
	}
	if renewed.PrivateKey == first.PrivateKey {
		t.Error("renewal reused the private key")
	}
	if want := epoch.Add(24 * time.Hour); !next.Equal(want) {
		t.Errorf("following renewal = %s, want %s", next, want)
	}
}

func TestJitterComesEarlyNeverLate(t *testing.T) {
	m, _, _ := newTest(t, 0.999)
	next := m.RenewDue(context.Background())
	lo, hi := epoch.Add(12*time.Hour-time.Duration(0.1*float64(24*time.Hour))), epoch.Add(12*time.Hour)
	if next.Before(lo) || next.After(hi) {
		t.Errorf("renewal with maximal jitter at %s, want within [%s, %s]", next, lo, hi)
	}
}

func TestFailedRenewalKeepsServingAndBacksOff(t *testing.T) {
	m, fs, clock := newTest(t, 0)
	ctx := context.Background()
	pod := PodRef{Namespace: "shop", Name: "cart"}
	orig, err := m.AddWorkload(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	fs.setFail(errors.New("control plane unreachable"))
	clock.Set(epoch.Add(12 * time.Hour))
	var waits []time.Duration
	for range 12 {
		now := clock.Now()
		next := m.RenewDue(ctx)
		waits = append(waits, next.Sub(now))
		clock.Set(next)
		got, err := m.Workload(pod.Key())
		if err != nil {
			t.Fatalf("at %s while renewal fails: %v; want the still-valid certificate", clock.Now(), err)
		}
		if got != orig {
			t.Fatal("served a different certificate though no renewal succeeded")
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}
	for i := range want {
		if waits[i] != want[i]*time.Second {
			t.Fatalf("retry waits = %v, want %v seconds", waits, want)
		}
	}
	// Past expiry the certificate is not served (fail closed).
	clock.Set(orig.Certificates[0].NotAfter)
	if _, err := m.Workload(pod.Key()); !errors.Is(err, ErrExpired) {
		t.Fatalf("after expiry Workload = %v, want ErrExpired", err)
	}
	// When the control plane is back the next attempt succeeds.
	fs.setFail(nil)
	m.RenewDue(ctx)
	if _, err := m.Workload(pod.Key()); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	st := m.Statuses()
	if len(st) != 2 || st[1].Failures != 0 || st[1].LastError != "" {
		t.Errorf("statuses after recovery = %+v", st)
	}
}

func TestRetryNeverWaitsPastExpiry(t *testing.T) {
	m, fs, clock := newTest(t, 0)
	ctx := context.Background()
	fs.setFail(errors.New("down"))
	node, _ := m.NodeSVID()
	expiry := node.Certificates[0].NotAfter
	clock.Set(expiry.Add(-10 * time.Second))
	next := m.RenewDue(ctx)
	if !next.Before(expiry) {
		t.Errorf("retry at %s, after expiry %s", next, expiry)
	}
}

func TestBundleUpdates(t *testing.T) {
	m, fs, _ := newTest(t, 0)
	if !m.Bundle().Equal(fs.ca.Bundle()) {
		t.Fatal("bundle from the bootstrap answer not installed")
	}
	other, _ := certstest.NewCA(t, nil, certs.Options{})
	b := fs.ca.Bundle()
	b.AddX509Authority(other.Bundle().X509Authorities()[0])
	if err := m.SetBundle(b); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Bundle().X509Authorities()); n != 2 {
		t.Errorf("bundle has %d roots, want 2", n)
	}
	if err := m.SetBundle(nil); err == nil {
		t.Error("SetBundle(nil) accepted")
	}
}

// A signer answering with a certificate for another key is not trusted.
type wrongKeySigner struct{ *fakeSigner }

func (w wrongKeySigner) SignWorkload(ctx context.Context, _ []byte, pod PodRef) (*Issued, error) {
	k, _ := certs.NewKey()
	csr, _ := certs.NewCSR(k)
	return w.fakeSigner.SignWorkload(ctx, csr, pod)
}

func TestRejectsCertificateForAnotherKey(t *testing.T) {
	ca, _ := certstest.NewCA(t, nil, certs.Options{})
	m, err := New(Config{Signer: wrongKeySigner{&fakeSigner{ca: ca}}, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddWorkload(context.Background(), PodRef{Namespace: "a", Name: "b"}); err == nil {
		t.Fatal("accepted a certificate that does not carry our key")
	}
}
