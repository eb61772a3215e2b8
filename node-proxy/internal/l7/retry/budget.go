package retry

import (
	"sync"
	"time"
)

// Window is the sliding window over which a Budget counts requests and
// retries. It matches the control plane's budget window (and Envoy's
// retry_budget.budget_interval, which translate sets to it).
const Window = 10 * time.Second

// windowSeconds is Window in whole seconds: the number of buckets.
const windowSeconds = int64(Window / time.Second)

// Default budget, as documented on the TrafficPolicy CRD.
const (
	DefaultBudgetPercent      = 20
	DefaultBudgetMinPerSecond = 10
)

// BudgetConfig configures a Budget; it mirrors weft.xds.v1.RetryBudget in
// ClusterMetadata.
type BudgetConfig struct {
	// Percent of the requests in the window that may be retried, on top
	// of the reserve below. 0 means only the reserve; values above 100
	// allow more than one retry per request on average.
	Percent uint32
	// MinPerSecond is the reserve: MinPerSecond × Window seconds retries
	// are always allowed per window, so low-traffic services can retry.
	// 0 means no reserve.
	MinPerSecond uint32
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
}

// Budget caps retries at Percent% of the requests of the last Window plus
// MinPerSecond per second of the window (Finagle's and Linkerd's retry
// budget, counted exactly over one-second buckets instead of with
// decaying tokens). Request deposits, TryRetry withdraws. Only first
// attempts are deposits: a retry never earns budget for further retries.
//
// A Budget is safe for concurrent use. Its methods take one mutex, touch
// a fixed ring of buckets and never allocate.
type Budget struct {
	now     func() time.Time
	percent int64
	reserve int64 // MinPerSecond × windowSeconds, scaled by 100

	mu       sync.Mutex // guards the fields below
	buckets  [windowSeconds]bucket
	started  bool  // whether head is set
	head     int64 // the second (Unix) of the newest bucket
	requests int64 // sum of buckets[*].requests
	retries  int64 // sum of buckets[*].retries
}

type bucket struct {
	requests, retries int64
}

// NewBudget returns a Budget with an empty window.
func NewBudget(c BudgetConfig) *Budget {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &Budget{
		now:     now,
		percent: int64(c.Percent),
		reserve: int64(c.MinPerSecond) * windowSeconds * 100,
	}
}

// Request records one request (a first attempt).
func (b *Budget) Request() {
	sec := b.now().Unix()
	b.mu.Lock()
	i := b.advance(sec)
	b.buckets[i].requests++
	b.requests++
	b.mu.Unlock()
}

// TryRetry withdraws one retry from the budget and reports whether it was
// allowed. A denied retry withdraws nothing.
func (b *Budget) TryRetry() bool {
	sec := b.now().Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.advance(sec)
	// retries+1 <= requests*percent/100 + reserve/100, in integers.
	if (b.retries+1)*100 > b.requests*b.percent+b.reserve {
		return false
	}
	b.buckets[i].retries++
	b.retries++
	return true
}

// advance moves the window so its newest bucket is second sec and returns
// that bucket's index. A clock that steps back counts into the newest
// bucket. b.mu must be held.
func (b *Budget) advance(sec int64) int {
	if !b.started || sec > b.head {
		n := sec - b.head
		if !b.started || n >= windowSeconds {
			n = windowSeconds
		}
		b.started = true
		for s := sec - n + 1; s <= sec; s++ {
			old := &b.buckets[mod(s)]
			b.requests -= old.requests
			b.retries -= old.retries
			*old = bucket{}
		}
		b.head = sec
	}
	return mod(b.head)
}

func mod(sec int64) int {
	m := sec % windowSeconds
	if m < 0 {
		m += windowSeconds
	}
	return int(m)
}
