package xds

import (
	"testing"
	"time"
)

func TestDebouncer(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name    string
		changes []int // ms after t0
		wantDue int   // ms after t0
	}{
		{"one change waits the quiet period", []int{0}, 100},
		{"a burst waits for quiet after the last change", []int{0, 10, 20, 90}, 190},
		{"a change stream is cut at the max delay", []int{0, 90, 180, 270, 360, 450, 540, 630, 720, 810, 900, 990}, 1000},
		{"quiet period and max delay coincide", []int{0, 900}, 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := debouncer{quiet: 100 * time.Millisecond, max: time.Second}
			var due time.Time
			for _, ms := range tc.changes {
				due = d.change(at(ms))
				if _, ok := d.fire(at(ms)); ok {
					t.Fatalf("fired at the change at %dms", ms)
				}
			}
			if want := at(tc.wantDue); !due.Equal(want) {
				t.Fatalf("due = +%s, want +%s", due.Sub(t0), want.Sub(t0))
			}
			if _, ok := d.fire(due.Add(-time.Nanosecond)); ok {
				t.Fatal("fired before due")
			}
			first, ok := d.fire(due)
			if !ok || !first.Equal(at(tc.changes[0])) {
				t.Fatalf("fire(due) = %v, %v; want the first change's time, true", first, ok)
			}
			if _, ok := d.fire(due.Add(time.Hour)); ok {
				t.Error("fired twice for one burst")
			}
			if !d.due().IsZero() {
				t.Errorf("due after firing = %v, want zero", d.due())
			}
		})
	}
}

// After a rebuild, the next change starts a new burst with its own max
// delay.
func TestDebouncerNewBurst(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := debouncer{quiet: 100 * time.Millisecond, max: time.Second}
	d.change(t0)
	if _, ok := d.fire(t0.Add(100 * time.Millisecond)); !ok {
		t.Fatal("first burst did not fire")
	}
	later := t0.Add(5 * time.Second)
	if got, want := d.change(later), later.Add(100*time.Millisecond); !got.Equal(want) {
		t.Errorf("second burst due = %v, want %v", got, want)
	}
}
