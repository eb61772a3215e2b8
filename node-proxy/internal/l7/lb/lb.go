package lb

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Picker chooses endpoints by index into the address list it was built for.
type Picker interface {
	// Pick chooses an endpoint among those for which exclude returns false
	// (exclude may be nil) and counts a request as started on it; ok=false
	// when none is left.
	Pick(exclude func(i int) bool) (i int, ok bool)
	// Done ends a request started by Pick on endpoint i. rtt is its latency;
	// a negative rtt records none.
	Done(i int, rtt time.Duration)
	// Rebuild returns a picker of the same kind and Config for addrs,
	// keeping the state of endpoints whose address was already present.
	Rebuild(addrs []string) Picker
	// Stats reports endpoint i's requests in flight and latency estimate
	// (0 when the picker keeps none or nothing was observed yet).
	Stats(i int) (outstanding int, latency time.Duration)
}

var (
	_ Picker = (*RoundRobin)(nil)
	_ Picker = (*LeastRequest)(nil)
	_ Picker = (*PeakEWMA)(nil)
)

// Config is shared by all pickers; each field says which use it.
type Config struct {
	// Choices is how many random endpoints LeastRequest and PeakEWMA compare
	// per pick (PeakEwmaLoadBalancer.choice_count). 0 means 2; values above
	// the number of endpoints are allowed.
	Choices int
	// Decay is PeakEWMA's time constant: an observation or an idle period
	// of Decay keeps exp(-1) ≈ 37% of the old estimate
	// (PeakEwmaLoadBalancer.decay). 0 means 10 s.
	Decay time.Duration
	// Now returns the current time (PeakEWMA). nil means time.Now.
	Now func() time.Time
	// Rand returns a uniform integer in [0, n); it must be safe for
	// concurrent use. nil means math/rand/v2.IntN.
	Rand func(n int) int
}

func (c Config) withDefaults() Config {
	if c.Choices <= 0 {
		c.Choices = 2
	}
	if c.Decay <= 0 {
		c.Decay = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.IntN
	}
	return c
}

// unobserved marks an endpoint's stamp before its first latency.
const unobserved = math.MinInt64

// endpoint is the state of one address, shared by the pickers built from
// one another by Rebuild.
type endpoint struct {
	addr        string
	outstanding atomic.Int64
	// est is the latency estimate in ns (float64 bits); stamp is the time
	// of the last observation in ns since the picker family's base, or
	// unobserved. Written under mu, est before stamp; read lock-free, stamp
	// before est. A reader may pair a new est with the old stamp; the
	// cost is then briefly over-decayed, which is harmless.
	est   atomic.Uint64
	stamp atomic.Int64
	mu    sync.Mutex // serialises writers of est and stamp
}

func newEndpoint(addr string) *endpoint {
	e := &endpoint{addr: addr}
	e.stamp.Store(unobserved)
	return e
}

// endpoints builds the state for addrs, reusing old entries by address.
// A duplicated address gets one reused entry and fresh ones for the rest.
func endpoints(old []*endpoint, addrs []string) []*endpoint {
	byAddr := make(map[string]*endpoint, len(old))
	for _, e := range old {
		if _, dup := byAddr[e.addr]; !dup {
			byAddr[e.addr] = e
		}
	}
	eps := make([]*endpoint, len(addrs))
	for i, a := range addrs {
		if e, ok := byAddr[a]; ok {
			eps[i] = e
			delete(byAddr, a)
		} else {
			eps[i] = newEndpoint(a)
		}
	}
	return eps
}

// draw returns a uniformly random index in [0, n) that is not skip and not
// excluded; ok=false when there is none. It tries a few random draws, then
// falls back to counting, so it is O(1) unless most endpoints are excluded.
func draw(rnd func(int) int, n, skip int, exclude func(int) bool) (int, bool) {
	m := n
	if skip >= 0 {
		m--
	}
	if m <= 0 {
		return -1, false
	}
	for try := 0; try < 4; try++ {
		i := rnd(m)
		if skip >= 0 && i >= skip {
			i++
		}
		if exclude == nil || !exclude(i) {
			return i, true
		}
	}
	avail := 0
	for i := 0; i < n; i++ {
		if i != skip && !exclude(i) {
			avail++
		}
	}
	if avail == 0 {
		return -1, false
	}
	r := rnd(avail)
	for i := 0; i < n; i++ {
		if i != skip && !exclude(i) {
			if r == 0 {
				return i, true
			}
			r--
		}
	}
	return -1, false // unreachable unless exclude is not a pure function
}

// p2c draws choices endpoints (the first two distinct) and returns the one
// with the lowest cost, ties going to the earlier draw.
func p2c(eps []*endpoint, choices int, rnd func(int) int, exclude func(int) bool, cost func(*endpoint) float64) (int, bool) {
	best, ok := draw(rnd, len(eps), -1, exclude)
	if !ok {
		return -1, false
	}
	bestCost := cost(eps[best])
	for c := 1; c < choices; c++ {
		j, ok := draw(rnd, len(eps), best, exclude)
		if !ok {
			break
		}
		if jc := cost(eps[j]); jc < bestCost {
			best, bestCost = j, jc
		}
	}
	eps[best].outstanding.Add(1)
	return best, true
}
