package retry

import (
	"math/rand/v2"
	"time"
)

// Default backoff, as in Envoy and on the TrafficPolicy CRD.
const (
	DefaultBackoffBase      = 25 * time.Millisecond
	DefaultBackoffMaxFactor = 10 // max = 10 × base
)

// Backoff is the wait before retry number attempt (1 for the first
// retry): Envoy's exponential backoff with full jitter, uniform in
// [0, (2^attempt − 1) × base) and capped at max. base ≤ 0 means
// DefaultBackoffBase; max ≤ 0 means DefaultBackoffMaxFactor × base, and a
// max below base is raised to base. rnd returns a number in [0, 1); nil
// means math/rand/v2.Float64.
func Backoff(attempt int, base, max time.Duration, rnd func() float64) time.Duration {
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if max <= 0 {
		max = DefaultBackoffMaxFactor * base
	}
	if max < base {
		max = base
	}
	if attempt < 1 {
		attempt = 1
	}
	ceil := max
	if attempt < 63 {
		// (2^attempt − 1) × base without overflow: stop once above max.
		if f := time.Duration(1)<<attempt - 1; f <= max/base {
			ceil = min(f*base, max)
		}
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	r := rnd()
	if r < 0 {
		r = 0
	}
	d := time.Duration(r * float64(ceil))
	if d >= ceil {
		d = ceil - 1
	}
	return d
}
