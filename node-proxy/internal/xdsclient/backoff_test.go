package xdsclient

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const lo, hi = 250 * time.Millisecond, 30 * time.Second
	tests := []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{n: 0, r: 0, want: 125 * time.Millisecond},
		{n: 0, r: 0.5, want: 187500 * time.Microsecond},
		{n: 0, r: 0.9999999, want: 249999987},
		{n: 1, r: 0, want: 250 * time.Millisecond},
		{n: 2, r: 0, want: 500 * time.Millisecond},
		{n: 6, r: 0, want: 8 * time.Second},
		{n: 7, r: 0, want: 15 * time.Second}, // 32s capped at 30s
		{n: 7, r: 0.9999999, want: 29999998500},
		{n: 1000, r: 0, want: 15 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		if got := backoff(tt.n, lo, hi, tt.r); got != tt.want {
			t.Errorf("backoff(%d, r=%v) = %v, want %v", tt.n, tt.r, got, tt.want)
		}
	}
}
