package lb

import (
	"math"
	"time"
)

// penalty is the cost (ns) of an unobserved endpoint with a request in
// flight: Finagle's Long.MaxValue >> 16, about 39 hours.
const penalty = float64(math.MaxInt64 >> 16)

// PeakEWMA picks, of cfg.Choices random endpoints, the one with the lowest
// peak-EWMA latency × (outstanding+1). See the package doc.
type PeakEWMA struct {
	cfg   Config
	eps   []*endpoint
	base  time.Time // stamps are ns since base; shared with rebuilt pickers
	decay float64   // cfg.Decay in ns
}

// NewPeakEWMA returns a P2C peak-EWMA picker over addrs.
func NewPeakEWMA(addrs []string, cfg Config) *PeakEWMA {
	cfg = cfg.withDefaults()
	return &PeakEWMA{cfg: cfg, eps: endpoints(nil, addrs), base: cfg.Now(), decay: float64(cfg.Decay)}
}

func (p *PeakEWMA) now() int64 { return int64(p.cfg.Now().Sub(p.base)) }

// estimate is e's latency estimate (ns) at now, decayed for the time since
// its last observation; ok=false when it has none.
func (p *PeakEWMA) estimate(e *endpoint, now int64) (float64, bool) {
	stamp := e.stamp.Load()
	if stamp == unobserved {
		return 0, false
	}
	est := math.Float64frombits(e.est.Load())
	if idle := now - stamp; idle > 0 {
		est *= math.Exp(-float64(idle) / p.decay)
	}
	return est, true
}

// Pick implements Picker.
func (p *PeakEWMA) Pick(exclude func(i int) bool) (int, bool) {
	if len(p.eps) == 0 {
		return -1, false
	}
	now := p.now()
	return p2c(p.eps, p.cfg.Choices, p.cfg.Rand, exclude, func(e *endpoint) float64 {
		out := float64(e.outstanding.Load())
		est, ok := p.estimate(e, now)
		if !ok {
			if out == 0 {
				return 0
			}
			return penalty + out
		}
		return est * (out + 1)
	})
}

// Done implements Picker.
func (p *PeakEWMA) Done(i int, rtt time.Duration) {
	e := p.eps[i]
	e.outstanding.Add(-1)
	if rtt < 0 {
		return
	}
	now, obs := p.now(), float64(rtt)
	e.mu.Lock()
	defer e.mu.Unlock()
	stamp := e.stamp.Load()
	if stamp == unobserved {
		e.est.Store(math.Float64bits(obs))
		e.stamp.Store(now)
		return
	}
	est := math.Float64frombits(e.est.Load())
	if obs > est {
		est = obs
	} else if elapsed := now - stamp; elapsed > 0 {
		w := math.Exp(-float64(elapsed) / p.decay)
		est = est*w + obs*(1-w)
	}
	e.est.Store(math.Float64bits(est))
	if now > stamp {
		e.stamp.Store(now)
	}
}

// Rebuild implements Picker.
func (p *PeakEWMA) Rebuild(addrs []string) Picker {
	return &PeakEWMA{cfg: p.cfg, eps: endpoints(p.eps, addrs), base: p.base, decay: p.decay}
}

// Stats implements Picker: the latency is the estimate decayed to now.
func (p *PeakEWMA) Stats(i int) (int, time.Duration) {
	e := p.eps[i]
	est, _ := p.estimate(e, p.now())
	return int(e.outstanding.Load()), time.Duration(est)
}
