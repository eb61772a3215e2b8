package xds

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// sendBudget bounds the bytes of delta responses that were sent and that
// their clients have not answered yet. A response stays in the server's
// memory, serialized, until the client has read it, and a client answers
// (ACK or NACK) only after reading it. Without a bound, the first
// responses to a thousand nodes connecting at once (megabytes each) all
// wait in memory while the clients work through them: 1 GB and more at
// 1,000 nodes. With it, streams take turns, which costs no time when the
// clients are the bottleneck anyway.
//
// A response stops counting when its client answers, when its stream ends,
// or, so that clients that never answer cannot stall every other stream,
// after hold.
type sendBudget struct {
	sem  *semaphore.Weighted
	size int64
	hold time.Duration
}

func newSendBudget(size int64, hold time.Duration) *sendBudget {
	return &sendBudget{sem: semaphore.NewWeighted(size), size: size, hold: hold}
}

// loan is one response's share of the budget.
type loan struct {
	b      *sendBudget
	n      int64
	repaid atomic.Bool
	timer  *time.Timer
}

// take waits until n bytes of the budget are free (all of it, for a
// response larger than the budget) and lends them. It fails only when ctx
// ends.
func (b *sendBudget) take(ctx context.Context, n int64) (*loan, error) {
	n = min(n, b.size)
	if err := b.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	l := &loan{b: b, n: n}
	l.timer = time.AfterFunc(b.hold, l.expire)
	return l, nil
}

// repay gives the bytes back; later calls do nothing.
func (l *loan) repay() {
	if l == nil {
		return
	}
	l.timer.Stop()
	l.expire()
}

func (l *loan) expire() {
	if l.repaid.CompareAndSwap(false, true) {
		l.b.sem.Release(l.n)
	}
}
