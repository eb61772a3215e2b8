package lb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock for one goroutine.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock               { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// seeded is a deterministic Rand for one goroutine.
func seeded(seed uint64) func(int) int {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).IntN
}

func addrs(first, n int) []string {
	a := make([]string, n)
	for i := range a {
		a[i] = fmt.Sprintf("10.0.0.%d:80", first+i)
	}
	return a
}

func excluding(set ...int) func(int) bool {
	return func(i int) bool { return slices.Contains(set, i) }
}

// zero makes RoundRobin start at endpoint 0.
func zero(int) int { return 0 }

func TestRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		exclude func(int) bool
		want    []int
	}{
		{"cycles", 3, nil, []int{0, 1, 2, 0, 1, 2}},
		{"skips excluded", 4, excluding(1, 2), []int{0, 3, 3, 3, 0, 3, 3, 3}},
		{"one left", 3, excluding(0, 2), []int{1, 1, 1}},
		{"single", 1, nil, []int{0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewRoundRobin(addrs(0, tc.n), Config{Rand: zero})
			var got []int
			for range tc.want {
				i, ok := p.Pick(tc.exclude)
				if !ok {
					t.Fatalf("Pick: ok=false")
				}
				p.Done(i, time.Millisecond)
				got = append(got, i)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("picks = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNoneLeft: every picker returns ok=false when all endpoints are
// excluded or there are none, and does not count a request.
func TestNoneLeft(t *testing.T) {
	for _, kind := range kinds {
		for _, tc := range []struct {
			name    string
			n       int
			exclude func(int) bool
		}{
			{"empty", 0, nil},
			{"all excluded", 3, func(int) bool { return true }},
			{"single excluded", 1, excluding(0)},
		} {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				p := kind.new(addrs(0, tc.n), Config{Rand: seeded(1), Now: newFakeClock().Now})
				if i, ok := p.Pick(tc.exclude); ok {
					t.Errorf("Pick = %d, true; want ok=false", i)
				}
				for i := range tc.n {
					if out, _ := p.Stats(i); out != 0 {
						t.Errorf("outstanding[%d] = %d, want 0", i, out)
					}
				}
			})
		}
	}
}

// TestP2CExclusion: P2C pickers only ever pick endpoints that are not
// excluded, and reach every one of them, including through the counting
// fallback when most are excluded.
func TestP2CExclusion(t *testing.T) {
	for _, kind := range kinds {
		for _, tc := range []struct {
			name    string
			n       int
			exclude []int
		}{
			{"none", 5, nil},
			{"one", 5, []int{2}},
			{"most", 100, func() (ex []int) {
				for i := range 100 {
					if i != 7 && i != 93 {
						ex = append(ex, i)
					}
				}
				return ex
			}()},
		} {
			t.Run(kind.name+"/"+tc.name, func(t *testing.T) {
				p := kind.new(addrs(0, tc.n), Config{Rand: seeded(2), Now: newFakeClock().Now})
				seen := map[int]bool{}
				for range 1000 {
					i, ok := p.Pick(excluding(tc.exclude...))
					if !ok {
						t.Fatal("Pick: ok=false")
					}
					if slices.Contains(tc.exclude, i) {
						t.Fatalf("picked excluded %d", i)
					}
					seen[i] = true
					p.Done(i, time.Millisecond)
				}
				if want := tc.n - len(tc.exclude); len(seen) != want {
					t.Errorf("picked %d distinct endpoints, want %d", len(seen), want)
				}
			})
		}
	}
}

func TestLeastRequest(t *testing.T) {
	for _, tc := range []struct {
		name        string
		outstanding []int // started on each endpoint before the pick
		exclude     []int
		want        int
	}{
		{"fewer on 1", []int{3, 0}, nil, 1},
		{"fewer on 0", []int{0, 2}, nil, 0},
		{"one fewer", []int{5, 4}, nil, 1},
		{"excluded is idle", []int{4, 2, 0}, []int{2}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewLeastRequest(addrs(0, len(tc.outstanding)), Config{Rand: seeded(3)})
			start(t, p, tc.outstanding)
			for range 20 { // any random pair
				got, ok := p.Pick(excluding(tc.exclude...))
				if !ok || got != tc.want {
					t.Fatalf("Pick = %d, %v; want %d, true", got, ok, tc.want)
				}
				p.Done(got, -1)
			}
		})
	}
}

// one is a start count of one request on endpoint i of n.
func one(i, n int) []int {
	c := make([]int, n)
	c[i] = 1
	return c
}

// start begins n[i] requests on endpoint i by excluding all the others.
func start(t *testing.T, p Picker, n []int) {
	t.Helper()
	for i, k := range n {
		for range k {
			got, ok := p.Pick(func(j int) bool { return j != i })
			if !ok || got != i {
				t.Fatalf("Pick(only %d) = %d, %v", i, got, ok)
			}
		}
	}
}

const ms = time.Millisecond

// step is one event in a peak-EWMA scenario on a fake clock.
type step struct {
	advance time.Duration
	ep      int           // endpoint observed
	rtt     time.Duration // observation; 0 = none, only advance
	wantEst []time.Duration
	want    int // the endpoint picked after this step; -1 = don't check
}

func TestPeakEWMA(t *testing.T) {
	const decay = 10 * time.Second
	// After d of elapsed time an observation keeps w = exp(-d/decay) of the
	// old estimate.
	ewma := func(old, obs, d time.Duration) time.Duration {
		w := math.Exp(-float64(d) / float64(decay))
		return time.Duration(float64(old)*w + float64(obs)*(1-w))
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"prefers faster", []step{
			{0, 0, 10 * ms, []time.Duration{10 * ms, 0}, 1}, // 1 unobserved and idle: cost 0
			{0, 1, 50 * ms, []time.Duration{10 * ms, 50 * ms}, 0},
		}},
		{"spike moves traffic at once", []step{
			{0, 0, 10 * ms, nil, -1},
			{0, 1, 50 * ms, nil, 0},
			{time.Second, 0, 200 * ms, []time.Duration{200 * ms, ewma(50*ms, 0, time.Second)}, 1},
		}},
		{"recovers as fast answers come back", []step{
			{0, 0, 10 * ms, nil, -1},
			{0, 1, 50 * ms, nil, 0},
			{0, 0, 200 * ms, nil, 1},
			// Both keep answering every 10 s: 0 fast again, 1 steady.
			{10 * time.Second, 1, 50 * ms, nil, 1},
			{0, 0, 10 * ms, []time.Duration{ewma(200*ms, 10*ms, 10*time.Second), 50 * ms}, 1},
			{10 * time.Second, 1, 50 * ms, nil, -1},
			{0, 0, 10 * ms, []time.Duration{ewma(ewma(200*ms, 10*ms, 10*time.Second), 10*ms, 10*time.Second), 50 * ms}, 0},
		}},
		{"idle endpoint decays and is probed", []step{
			{0, 0, 10 * ms, nil, -1},
			{0, 1, 100 * ms, nil, 0},
			{30 * time.Second, 0, 10 * ms, []time.Duration{10 * ms, ewma(100*ms, 0, 30*time.Second)}, 1},
		}},
		{"below-average sample is averaged, not taken", []step{
			{0, 0, 100 * ms, nil, -1},
			{decay, 0, 10 * ms, []time.Duration{ewma(100*ms, 10*ms, decay), 0}, -1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := NewPeakEWMA(addrs(0, 2), Config{Decay: decay, Now: clock.Now, Rand: seeded(4)})
			for n, s := range tc.steps {
				clock.Advance(s.advance)
				if s.rtt > 0 {
					start(t, p, one(s.ep, 2))
					p.Done(s.ep, s.rtt)
				}
				for i, want := range s.wantEst {
					if _, got := p.Stats(i); absDiff(got, want) > time.Microsecond {
						t.Errorf("step %d: estimate[%d] = %v, want %v", n, i, got, want)
					}
				}
				if s.want >= 0 {
					got, ok := p.Pick(nil)
					if !ok || got != s.want {
						t.Errorf("step %d: Pick = %d, %v; want %d", n, got, ok, s.want)
					}
					if ok {
						p.Done(got, -1)
					}
				}
			}
		})
	}
}

func absDiff(a, b time.Duration) time.Duration {
	if a > b {
		return a - b
	}
	return b - a
}

// TestPeakEWMAOutstanding: the cost is estimate × (outstanding+1), and an
// unobserved endpoint gets one request at a time.
func TestPeakEWMAOutstanding(t *testing.T) {
	clock := newFakeClock()
	p := NewPeakEWMA(addrs(0, 2), Config{Now: clock.Now, Rand: seeded(5)})
	start(t, p, []int{1, 0})
	p.Done(0, 5*ms)
	// Endpoint 1 has no observation and one request in flight: it gets no
	// other, however busy 0 gets.
	start(t, p, []int{0, 1})
	for k := range 50 {
		if got, _ := p.Pick(nil); got != 0 {
			t.Fatalf("pick %d with 1 unobserved and busy = %d, want 0", k, got)
		}
	}
	p.Done(1, 10*ms)
	// 0: 5 ms × 51, 1: 10 ms × 1 -> 1.
	if got, _ := p.Pick(nil); got != 1 {
		t.Fatalf("Pick = %d, want 1", got)
	}
	p.Done(1, 10*ms)
	for range 50 {
		p.Done(0, 5*ms)
	}
	// 0: 5 ms × 1, 1: 10 ms × 1 -> 0.
	if got, _ := p.Pick(nil); got != 0 {
		t.Errorf("Pick = %d, want 0 (5ms×1 < 10ms×1)", got)
	}
	// 0 has 1 in flight; one more makes 5 ms × 3 > 10 ms × 1 -> 1.
	start(t, p, []int{1, 0})
	if got, _ := p.Pick(nil); got != 1 {
		t.Errorf("Pick = %d, want 1 (5ms×3 > 10ms×1)", got)
	}
}

// TestNewEndpointGetsTraffic: an endpoint added by EDS is tried, once at a
// time, and then used on its merits.
func TestNewEndpointGetsTraffic(t *testing.T) {
	clock := newFakeClock()
	var p Picker = NewPeakEWMA(addrs(0, 2), Config{Now: clock.Now, Rand: seeded(6)})
	for i := range 2 {
		start(t, p, one(i, 2))
		p.Done(i, 10*ms)
	}
	p = p.Rebuild(addrs(0, 3)) // 10.0.0.2 is new at index 2
	notZero := excluding(0)
	if got, _ := p.Pick(notZero); got != 2 {
		t.Fatalf("Pick = %d, want the new endpoint 2", got)
	}
	if got, _ := p.Pick(notZero); got != 1 {
		t.Fatalf("Pick = %d, want 1 while 2's first request is in flight", got)
	}
	p.Done(1, 10*ms)
	p.Done(2, 5*ms)
	if got, _ := p.Pick(notZero); got != 2 {
		t.Fatalf("Pick = %d, want 2 (5ms < 10ms)", got)
	}
}

func TestRebuildCarriesState(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			clock := newFakeClock()
			old := kind.new([]string{"a:1", "b:1", "c:1"}, Config{Now: clock.Now, Rand: seeded(7)})
			start(t, old, []int{1, 2, 0})
			old.Done(0, 30*ms)
			old.Done(1, 20*ms) // b: 1 still in flight
			_, aEst := old.Stats(0)
			_, bEst := old.Stats(1)

			p := old.Rebuild([]string{"d:1", "b:1", "a:1"}) // reorder, drop c, add d
			for _, tc := range []struct {
				i       int
				wantOut int
				wantEst time.Duration
			}{
				{0, 0, 0},    // d: new
				{1, 1, bEst}, // b
				{2, 0, aEst}, // a
			} {
				out, est := p.Stats(tc.i)
				if out != tc.wantOut || est != tc.wantEst {
					t.Errorf("Stats(%d) = %d, %v; want %d, %v", tc.i, out, est, tc.wantOut, tc.wantEst)
				}
			}
			// The request in flight on the old picker ends there; the new
			// picker sees it.
			old.Done(1, 20*ms)
			if out, _ := p.Stats(1); out != 0 {
				t.Errorf("after old Done: outstanding = %d, want 0", out)
			}
		})
	}
}

// TestPeakEWMAStatistical: with a fixed seed, {fast, slow} under load, most
// traffic goes to the fast endpoint; slow still gets some (it is probed).
func TestPeakEWMAStatistical(t *testing.T) {
	for _, tc := range []struct {
		name          string
		latency       []time.Duration
		every         time.Duration // a new request every
		minFast, slow float64       // share bounds: fast >= minFast, slow > 0 when slow is set
	}{
		{"light load", []time.Duration{5 * ms, 50 * ms}, 10 * ms, 0.95, 0},
		{"heavy load", []time.Duration{5 * ms, 50 * ms}, ms / 2, 0.80, 0.001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			p := NewPeakEWMA([]string{"fast:80", "slow:80"}, Config{Now: clock.Now, Rand: seeded(8)})
			type inflight struct {
				ep  int
				end time.Time
			}
			var q []inflight
			counts := make([]int, 2)
			const requests = 20000
			for range requests {
				clock.Advance(tc.every)
				q = slices.DeleteFunc(q, func(r inflight) bool {
					if r.end.After(clock.Now()) {
						return false
					}
					p.Done(r.ep, tc.latency[r.ep])
					return true
				})
				i, ok := p.Pick(nil)
				if !ok {
					t.Fatal("Pick: ok=false")
				}
				counts[i]++
				q = append(q, inflight{i, clock.Now().Add(tc.latency[i])})
			}
			fast := float64(counts[0]) / requests
			slow := float64(counts[1]) / requests
			t.Logf("fast %.3f slow %.3f", fast, slow)
			if fast < tc.minFast {
				t.Errorf("fast share = %.3f, want >= %.2f", fast, tc.minFast)
			}
			if slow < tc.slow {
				t.Errorf("slow share = %.4f, want >= %.3f", slow, tc.slow)
			}
		})
	}
}

// TestConcurrent runs picks, dones and rebuilds at once under -race, with
// the real clock and random source, and checks no request is lost.
func TestConcurrent(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind.name, func(t *testing.T) {
			first := kind.new(addrs(0, 10), Config{})
			var mu sync.Mutex // guards cur
			cur := first
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for k := range 2000 {
						mu.Lock()
						p := cur
						mu.Unlock()
						i, ok := p.Pick(func(i int) bool { return i == g })
						if !ok {
							t.Error("Pick: ok=false")
							return
						}
						p.Done(i, time.Duration(k%7)*ms)
					}
				})
			}
			wg.Go(func() {
				for k := range 200 {
					mu.Lock()
					cur = cur.Rebuild(addrs(k%3, 10))
					mu.Unlock()
				}
			})
			wg.Wait()
			for i := range 10 {
				if out, _ := cur.Stats(i); out != 0 {
					t.Errorf("outstanding[%d] = %d, want 0", i, out)
				}
			}
		})
	}
}

var kinds = []struct {
	name string
	new  func([]string, Config) Picker
}{
	{"RoundRobin", func(a []string, c Config) Picker { return NewRoundRobin(a, c) }},
	{"LeastRequest", func(a []string, c Config) Picker { return NewLeastRequest(a, c) }},
	{"PeakEWMA", func(a []string, c Config) Picker { return NewPeakEWMA(a, c) }},
}
