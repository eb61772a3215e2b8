package retry

import (
	"math"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const ms = time.Millisecond
	fixed := func(f float64) func() float64 { return func() float64 { return f } }
	top := math.Nextafter(1, 0) // the largest rnd value
	tests := []struct {
		name      string
		attempt   int
		base, max time.Duration
		rnd       float64
		want      time.Duration
	}{
		{"first retry, no jitter", 1, 25 * ms, 250 * ms, 0, 0},
		{"first retry, half", 1, 25 * ms, 250 * ms, 0.5, 12500 * time.Microsecond},
		{"first retry, top", 1, 25 * ms, 250 * ms, top, 25*ms - 1},
		{"second retry, top", 2, 25 * ms, 250 * ms, top, 75*ms - 1},
		{"third retry, half", 3, 25 * ms, 250 * ms, 0.5, 87500 * time.Microsecond},
		{"fourth retry capped", 4, 25 * ms, 250 * ms, top, 250*ms - 1},
		{"huge attempt capped", 1000, 25 * ms, 250 * ms, 0.5, 125 * ms},
		{"attempt 62 capped", 62, 25 * ms, 250 * ms, 0.5, 125 * ms},
		{"attempt 0 is 1", 0, 25 * ms, 250 * ms, 0.5, 12500 * time.Microsecond},
		{"defaults", 10, 0, 0, 0.5, 125 * ms},
		{"max defaults to 10x base", 10, 100 * ms, 0, 0.5, 500 * ms},
		{"max below base", 3, 100 * ms, 10 * ms, 0.5, 50 * ms},
		{"rnd of 1 stays below ceiling", 1, 25 * ms, 250 * ms, 1, 25*ms - 1},
		{"negative rnd", 1, 25 * ms, 250 * ms, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Backoff(tt.attempt, tt.base, tt.max, fixed(tt.rnd)); got != tt.want {
				t.Errorf("Backoff(%d, %v, %v, %v) = %v, want %v", tt.attempt, tt.base, tt.max, tt.rnd, got, tt.want)
			}
		})
	}
}

func TestBackoffRandomBounds(t *testing.T) {
	for attempt := 1; attempt <= 20; attempt++ {
		for range 100 {
			got := Backoff(attempt, 25*time.Millisecond, 250*time.Millisecond, nil)
			if got < 0 || got >= 250*time.Millisecond {
				t.Fatalf("Backoff(%d) = %v, want in [0, 250ms)", attempt, got)
			}
		}
	}
}
