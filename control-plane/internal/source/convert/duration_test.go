package convert

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0},
		{"0ms", 0},
		{"1h", time.Hour},
		{"30m", 30 * time.Minute},
		{"10s", 10 * time.Second},
		{"500ms", 500 * time.Millisecond},
		{"1m30s", 90 * time.Second},
		{"1h2m3s4ms", time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond},
		{"1ms1s", time.Second + time.Millisecond},
		{"99999h", 99999 * time.Hour},
		{"00010s", 10 * time.Second},
		{"1s1s", 2 * time.Second}, // the pattern allows repeated units
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "empty"},
		{"5", "no unit"},
		{"s", "expected a number"},
		{"1.5s", "unknown unit"},
		{"-1s", "expected a number"},
		{"1us", "unknown unit"},
		{"1d", "unknown unit"},
		{"100000s", "more than 5 digits"},
		{"1h1m1s1ms1ms", "more than 4"},
		{" 1s", "expected a number"},
		{"1s ", "expected a number"},
		{"1S", "unknown unit"},
	} {
		_, err := ParseDuration(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.why) || !strings.Contains(err.Error(), "e.g. 500ms") {
			t.Errorf("ParseDuration(%q) error = %v, want one saying %q and showing the format", tc.in, err, tc.why)
		}
	}
}
