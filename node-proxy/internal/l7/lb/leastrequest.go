package lb

import "time"

// LeastRequest picks, of cfg.Choices random endpoints, the one with the
// fewest requests in flight.
type LeastRequest struct {
	cfg Config
	eps []*endpoint
}

// NewLeastRequest returns a P2C least-request picker over addrs.
func NewLeastRequest(addrs []string, cfg Config) *LeastRequest {
	return &LeastRequest{cfg: cfg.withDefaults(), eps: endpoints(nil, addrs)}
}

func outstandingCost(e *endpoint) float64 { return float64(e.outstanding.Load()) }

// Pick implements Picker.
func (l *LeastRequest) Pick(exclude func(i int) bool) (int, bool) {
	return p2c(l.eps, l.cfg.Choices, l.cfg.Rand, exclude, outstandingCost)
}

// Done implements Picker.
func (l *LeastRequest) Done(i int, _ time.Duration) { l.eps[i].outstanding.Add(-1) }

// Rebuild implements Picker.
func (l *LeastRequest) Rebuild(addrs []string) Picker {
	return &LeastRequest{cfg: l.cfg, eps: endpoints(l.eps, addrs)}
}

// Stats implements Picker; the latency is always 0.
func (l *LeastRequest) Stats(i int) (int, time.Duration) {
	return int(l.eps[i].outstanding.Load()), 0
}
