package lb

import (
	"sync/atomic"
	"time"
)

// RoundRobin picks endpoints in turn. It keeps no per-endpoint state; the
// turn counter is carried across Rebuild.
type RoundRobin struct {
	cfg  Config
	eps  []*endpoint
	next *counter // shared with rebuilt pickers
}

// NewRoundRobin returns a round-robin picker over addrs, starting at a
// random endpoint (cfg.Rand) so proxies do not move in lockstep.
func NewRoundRobin(addrs []string, cfg Config) *RoundRobin {
	cfg = cfg.withDefaults()
	r := &RoundRobin{cfg: cfg, eps: endpoints(nil, addrs), next: new(counter)}
	if len(addrs) > 0 {
		r.next.n.Store(uint64(cfg.Rand(len(addrs))))
	}
	return r
}

// Pick implements Picker.
func (r *RoundRobin) Pick(exclude func(i int) bool) (int, bool) {
	n := uint64(len(r.eps))
	if n == 0 {
		return -1, false
	}
	start := r.next.n.Add(1) - 1
	for k := uint64(0); k < n; k++ {
		i := int((start + k) % n)
		if exclude == nil || !exclude(i) {
			r.eps[i].outstanding.Add(1)
			return i, true
		}
	}
	return -1, false
}

// Done implements Picker.
func (r *RoundRobin) Done(i int, _ time.Duration) { r.eps[i].outstanding.Add(-1) }

// Rebuild implements Picker.
func (r *RoundRobin) Rebuild(addrs []string) Picker {
	return &RoundRobin{cfg: r.cfg, eps: endpoints(r.eps, addrs), next: r.next}
}

// Stats implements Picker; the latency is always 0.
func (r *RoundRobin) Stats(i int) (int, time.Duration) {
	return int(r.eps[i].outstanding.Load()), 0
}

// counter is the round-robin turn, on its own cache line.
type counter struct {
	_ [64]byte
	n atomic.Uint64
	_ [56]byte
}
