package xds

import "time"

// debouncer decides when a burst of model changes is over. It does no I/O
// and reads no clock: the caller passes the time of every event, so the
// policy is tested without timers.
//
// A rebuild is due quiet after the last change, but never later than max
// after the first change of the burst, so a model that never stops
// changing still reaches the nodes.
type debouncer struct {
	quiet, max time.Duration

	pending     bool      // a change has not been rebuilt yet
	first, last time.Time // of the pending burst
}

// change records a change at now and returns when the rebuild is due.
func (d *debouncer) change(now time.Time) time.Time {
	if !d.pending {
		d.pending, d.first = true, now
	}
	d.last = now
	return d.due()
}

// due is when the pending burst must be rebuilt; zero when none is pending.
func (d *debouncer) due() time.Time {
	if !d.pending {
		return time.Time{}
	}
	quietEnd, maxEnd := d.last.Add(d.quiet), d.first.Add(d.max)
	if maxEnd.Before(quietEnd) {
		return maxEnd
	}
	return quietEnd
}

// fire reports whether the pending burst is due at now. If it is, the burst
// ends and fire returns the time of its first change.
func (d *debouncer) fire(now time.Time) (first time.Time, ok bool) {
	if !d.pending || now.Before(d.due()) {
		return time.Time{}, false
	}
	d.pending = false
	return d.first, true
}
