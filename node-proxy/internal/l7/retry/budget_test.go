package retry

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// drain withdraws until denied and returns how many retries were allowed.
func drain(b *Budget) int {
	n := 0
	for b.TryRetry() {
		n++
	}
	return n
}

func TestBudget(t *testing.T) {
	type step struct {
		advance  time.Duration
		requests int
		want     int // retries allowed by draining after the requests
	}
	tests := []struct {
		name  string
		cfg   BudgetConfig
		steps []step
	}{
		{"no budget", BudgetConfig{}, []step{{0, 1000, 0}}},
		{"reserve only", BudgetConfig{MinPerSecond: 10}, []step{
			{0, 0, 100},
			{time.Second, 0, 0}, // the reserve is per window, already spent
		}},
		{"percent only", BudgetConfig{Percent: 20}, []step{
			{0, 4, 0}, // 20% of 4 is 0.8: no whole retry
			{0, 1, 1},
			{0, 10, 2},
		}},
		{"percent and reserve", BudgetConfig{Percent: 20, MinPerSecond: 10}, []step{
			{0, 100, 120},
			{time.Second, 50, 10},
		}},
		{"window slides", BudgetConfig{Percent: 50}, []step{
			{0, 100, 50},
			{5 * time.Second, 100, 50},
			// 10 s after the start the first 100 requests and their 50
			// retries leave the window: 100 requests, 50 retries remain.
			{5 * time.Second, 0, 0},
			{5 * time.Second, 0, 0}, // all gone: nothing left to spend
			{0, 10, 5},
		}},
		{"long idle resets", BudgetConfig{Percent: 100, MinPerSecond: 1}, []step{
			{0, 5, 15},
			{time.Hour, 0, 10},
		}},
		{"100 percent", BudgetConfig{Percent: 100}, []step{{0, 7, 7}}},
		{"above 100 percent", BudgetConfig{Percent: 250}, []step{{0, 2, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			tt.cfg.Now = clk.Now
			b := NewBudget(tt.cfg)
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				for range s.requests {
					b.Request()
				}
				if got := drain(b); got != s.want {
					t.Errorf("step %d: retries allowed = %d, want %d", i, got, s.want)
				}
			}
		})
	}
}

func TestBudgetClockAtZero(t *testing.T) {
	b := NewBudget(BudgetConfig{Percent: 100, Now: func() time.Time { return time.Unix(0, 0) }})
	b.Request()
	if got := drain(b); got != 1 {
		t.Errorf("retries allowed = %d, want 1", got)
	}
}

func TestBudgetClockStepsBack(t *testing.T) {
	clk := newFakeClock()
	b := NewBudget(BudgetConfig{Percent: 100, Now: clk.Now})
	b.Request()
	clk.Advance(-5 * time.Second)
	b.Request()
	if got := drain(b); got != 2 {
		t.Errorf("retries allowed = %d, want 2", got)
	}
}

// TestBudgetStorm: every request fails and wants three retries. The
// budget must hold retries to percent% of requests plus the reserve, in
// total and in every window.
func TestBudgetStorm(t *testing.T) {
	const (
		percent      = 20
		minPerSecond = 10
		rate         = 1000 // requests per second
		attempts     = 3
	)
	for _, dur := range []time.Duration{10 * time.Second, 60 * time.Second} {
		t.Run(dur.String(), func(t *testing.T) {
			clk := newFakeClock()
			b := NewBudget(BudgetConfig{Percent: percent, MinPerSecond: minPerSecond, Now: clk.Now})
			requests := int(dur.Seconds()) * rate
			perSecond := make([]int, int(dur.Seconds()))
			retries := 0
			for i := range requests {
				b.Request()
				for range attempts {
					if !b.TryRetry() {
						break
					}
					retries++
					perSecond[i/rate]++
				}
				clk.Advance(time.Second / rate)
			}
			limit := requests*percent/100 + minPerSecond*int(dur.Seconds())
			if retries > limit || retries == 0 {
				t.Errorf("%d requests: %d retries, want 1 to %d", requests, retries, limit)
			}
			winLimit := Window.Seconds()*rate*percent/100 + minPerSecond*Window.Seconds()
			for s := 0; s+int(Window.Seconds()) <= len(perSecond); s++ {
				w := 0
				for _, n := range perSecond[s : s+int(Window.Seconds())] {
					w += n
				}
				if float64(w) > winLimit {
					t.Errorf("window at %ds: %d retries, want <= %v", s, w, winLimit)
				}
			}
			t.Logf("%d requests, %d retries (limit %d)", requests, retries, limit)
		})
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(BudgetConfig{Percent: 10, Now: newFakeClock().Now})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			n := 0
			for range 1000 {
				b.Request()
				if b.TryRetry() {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if allowed > 800 || allowed == 0 {
		t.Errorf("allowed %d retries for 8000 requests at 10%%, want 1 to 800", allowed)
	}
}

func BenchmarkBudget(b *testing.B) {
	bud := NewBudget(BudgetConfig{Percent: DefaultBudgetPercent, MinPerSecond: DefaultBudgetMinPerSecond})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Request()
			bud.TryRetry()
		}
	})
}
