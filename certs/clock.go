package certs

import "time"

// Clock tells the time. Production code uses SystemClock; tests use
// certstest.Clock so that rotation can be tested without sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
