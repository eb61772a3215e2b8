package xdsclient

import "time"

// backoff is the wait before reconnect attempt n (0 after a stream that
// delivered something): min doubled n times, capped at max, then
// jittered by r in [0, 1) to between half and all of it, so that the
// nodes a control-plane restart disconnects do not all come back at once.
func backoff(n int, minWait, maxWait time.Duration, r float64) time.Duration {
	d := minWait
	for i := 0; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + time.Duration(r*float64(d/2))
}
