package outlier

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// clock is a fake clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// translated is what translate emits for
// {consecutive5xxErrors: 5, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50}.
func translated() *clusterv3.OutlierDetection {
	return &clusterv3.OutlierDetection{
		Interval:                 durationpb.New(5 * time.Second),
		BaseEjectionTime:         durationpb.New(30 * time.Second),
		MaxEjectionPercent:       wrapperspb.UInt32(50),
		EnforcingSuccessRate:     wrapperspb.UInt32(0),
		Consecutive_5Xx:          wrapperspb.UInt32(5),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
	}
}

func newDetector(t testing.TB, od *clusterv3.OutlierDetection, n int) (*Detector, *clock) {
	t.Helper()
	c := newClock()
	d, err := New(od, c.Now)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	d.SetEndpoints(addrs(n))
	return d, c
}

func addrs(n int) []string {
	a := make([]string, n)
	for i := range a {
		a[i] = fmt.Sprintf("10.0.0.%d:80", i+1)
	}
	return a
}

const a1, a2, a3 = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"

func report(d *Detector, addr string, status, times int) {
	for range times {
		d.Report(addr, status, false)
	}
}

func TestConsecutive5xxEjectsAtThreshold(t *testing.T) {
	d, _ := newDetector(t, translated(), 4)
	for i := 1; i <= 5; i++ {
		d.Report(a1, 500, false)
		if got, want := d.Ejected(a1), i == 5; got != want {
			t.Fatalf("after %d 5xx: Ejected = %v, want %v", i, got, want)
		}
	}
	if d.Ejected(a2) {
		t.Errorf("Ejected(%s) = true, want false", a2)
	}
	if got, want := d.Stats(), (Stats{Endpoints: 4, Ejected: 1, EjectionsTotal: 1}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestSuccessResets(t *testing.T) {
	d, _ := newDetector(t, translated(), 4)
	report(d, a1, 500, 4)
	d.Report(a1, 404, false) // a 4xx is not an error for the detector
	report(d, a1, 503, 4)
	if d.Ejected(a1) {
		t.Fatal("ejected after 4 + 4 5xx with a success between")
	}
	d.Report(a1, 0, false) // client went away: ignored
	d.Report(a1, 502, false)
	if !d.Ejected(a1) {
		t.Fatal("not ejected after 5 consecutive 5xx")
	}
}

func TestEjectionTime(t *testing.T) {
	d, c := newDetector(t, translated(), 4) // base 30 s, interval 5 s
	report(d, a1, 500, 5)
	c.Advance(30*time.Second - time.Nanosecond)
	if !d.Ejected(a1) {
		t.Fatal("unejected before base_ejection_time")
	}
	c.Advance(time.Nanosecond)
	if d.Ejected(a1) {
		t.Fatal("still ejected after base_ejection_time")
	}
	// Second ejection soon after: twice as long.
	c.Advance(10 * time.Second)
	report(d, a1, 500, 5)
	c.Advance(60*time.Second - time.Nanosecond)
	if !d.Ejected(a1) {
		t.Fatal("second ejection ended before 2 × base")
	}
	c.Advance(time.Nanosecond)
	if d.Ejected(a1) {
		t.Fatal("second ejection lasts more than 2 × base")
	}
	// Third: 3 × base.
	report(d, a1, 500, 5)
	c.Advance(90*time.Second - time.Nanosecond)
	if !d.Ejected(a1) {
		t.Fatal("third ejection ended before 3 × base")
	}
	c.Advance(time.Nanosecond)
	// Healthy for base + 2 intervals: the multiplier (3) drops by 3
	// ticks to 0, so the next ejection is base again.
	c.Advance(30*time.Second + 10*time.Second)
	report(d, a1, 500, 5)
	c.Advance(30*time.Second - time.Nanosecond)
	if !d.Ejected(a1) {
		t.Fatal("fourth ejection ended before base")
	}
	c.Advance(time.Nanosecond)
	if d.Ejected(a1) {
		t.Fatal("fourth ejection lasts more than base after a healthy period")
	}
	if got, want := d.Stats().EjectionsTotal, uint64(4); got != want {
		t.Errorf("EjectionsTotal = %d, want %d", got, want)
	}
}

func TestMaxEjectionTime(t *testing.T) {
	od := translated()
	od.MaxEjectionTime = durationpb.New(70 * time.Second) // base 30 s
	d, c := newDetector(t, od, 4)
	for i, want := range []time.Duration{30, 60, 70, 70} {
		report(d, a1, 500, 5)
		c.Advance(want*time.Second - time.Nanosecond)
		if !d.Ejected(a1) {
			t.Fatalf("ejection %d ended before %ds", i+1, want)
		}
		c.Advance(time.Nanosecond)
		if d.Ejected(a1) {
			t.Fatalf("ejection %d lasts more than %ds", i+1, want)
		}
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		percent   uint32
		endpoints int
		always    bool
		want      int // endpoints ejected when all fail
	}{
		{50, 4, false, 2},
		{30, 3, false, 0}, // one of three is 33% > 30%: Envoy does not eject
		{30, 3, true, 1},  // always_eject_one_host
		{34, 3, false, 1},
		{100, 3, false, 3},
		{10, 10, false, 1},
		{0, 5, false, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d%%/%d/always=%v", tt.percent, tt.endpoints, tt.always), func(t *testing.T) {
			od := translated()
			od.MaxEjectionPercent = wrapperspb.UInt32(tt.percent)
			if tt.always {
				od.AlwaysEjectOneHost = wrapperspb.Bool(true)
			}
			d, _ := newDetector(t, od, tt.endpoints)
			for _, a := range addrs(tt.endpoints) {
				report(d, a, 500, 5)
			}
			if got := d.Stats().Ejected; got != tt.want {
				t.Errorf("ejected %d, want %d", got, tt.want)
			}
		})
	}
}

func TestMaxEjectionPercentCountsOnlyActive(t *testing.T) {
	d, c := newDetector(t, translated(), 2) // 50%: one of two
	report(d, a1, 500, 5)
	report(d, a2, 500, 5)
	if !d.Ejected(a1) || d.Ejected(a2) {
		t.Fatalf("Ejected = %v, %v; want true, false", d.Ejected(a1), d.Ejected(a2))
	}
	c.Advance(30 * time.Second) // a1's ejection expires
	report(d, a2, 500, 5)       // the counter restarted after the refused ejection
	if d.Ejected(a1) || !d.Ejected(a2) {
		t.Fatalf("Ejected = %v, %v; want false, true", d.Ejected(a1), d.Ejected(a2))
	}
}

func TestGatewayFailures(t *testing.T) {
	// translate for {consecutiveGatewayErrors: 3, maxEjectionPercent: 30, baseEjectionTime: 1m}:
	// consecutive_5xx off (enforcing 0), gateway failures on.
	od := &clusterv3.OutlierDetection{
		Interval:                           durationpb.New(10 * time.Second),
		BaseEjectionTime:                   durationpb.New(time.Minute),
		MaxEjectionPercent:                 wrapperspb.UInt32(30),
		EnforcingSuccessRate:               wrapperspb.UInt32(0),
		EnforcingConsecutive_5Xx:           wrapperspb.UInt32(0),
		ConsecutiveGatewayFailure:          wrapperspb.UInt32(3),
		EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(100),
	}
	tests := []struct {
		name  string
		steps []func(d *Detector)
		want  bool
	}{
		{"three connect failures", []func(*Detector){gw, gw, gw}, true},
		{"502 503 504", []func(*Detector){st(502), st(503), st(504)}, true},
		{"mixed", []func(*Detector){gw, st(503), gw}, true},
		{"500 resets", []func(*Detector){gw, gw, st(500), gw}, false},
		{"200 resets", []func(*Detector){gw, gw, st(200), gw, gw}, false},
		{"5xx alone never ejects", []func(*Detector){st(500), st(500), st(500), st(500), st(500), st(500)}, false},
		{"two", []func(*Detector){gw, gw}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, c := newDetector(t, od, 10)
			for _, s := range tt.steps {
				s(d)
			}
			if got := d.Ejected(a1); got != tt.want {
				t.Fatalf("Ejected = %v, want %v", got, tt.want)
			}
			if tt.want {
				c.Advance(time.Minute)
				if d.Ejected(a1) {
					t.Error("still ejected after base_ejection_time")
				}
			}
		})
	}
}

func gw(d *Detector) { d.Report(a1, 0, true) }

func st(status int) func(*Detector) { return func(d *Detector) { d.Report(a1, status, false) } }

func TestGatewayFailuresCountAs5xx(t *testing.T) {
	d, _ := newDetector(t, translated(), 4) // consecutive_5xx 5, gateway off
	for range 5 {
		d.Report(a1, 0, true)
	}
	if !d.Ejected(a1) {
		t.Fatal("5 connect failures did not eject through consecutive_5xx")
	}
}

func TestSetEndpoints(t *testing.T) {
	d, c := newDetector(t, translated(), 3)
	report(d, a1, 500, 5)
	report(d, a2, 500, 4)
	d.SetEndpoints([]string{a2, a1, "10.0.0.9:80", a3})
	if !d.Ejected(a1) {
		t.Error("a kept endpoint lost its ejection")
	}
	d.Report(a2, 500, false)
	if !d.Ejected(a2) {
		t.Error("a kept endpoint lost its counter")
	}
	d.SetEndpoints([]string{a2, a3})
	d.Report(a1, 500, false)
	if d.Ejected(a1) {
		t.Error("a removed endpoint is ejected")
	}
	d.SetEndpoints([]string{a1, a2, a3})
	if d.Ejected(a1) {
		t.Error("a re-added endpoint kept its old state")
	}
	c.Advance(time.Hour)
	if got, want := d.Stats(), (Stats{Endpoints: 3, EjectionsTotal: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestNilDetector(t *testing.T) {
	d, err := New(nil, nil)
	if err != nil || d != nil {
		t.Fatalf("New(nil) = %v, %v; want nil, nil", d, err)
	}
	d.SetEndpoints([]string{a1})
	report(d, a1, 500, 100)
	if d.Ejected(a1) {
		t.Error("nil detector ejected")
	}
	if got := d.Stats(); got != (Stats{}) {
		t.Errorf("Stats = %+v, want zero", got)
	}
}

func TestDefaults(t *testing.T) {
	// Only enforcing_success_rate: 0 set; the rest are Envoy's defaults
	// (5 consecutive 5xx, 30 s, 10%, gateway failures not enforced).
	d, c := newDetector(t, &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}, 10)
	for i := range 10 {
		report(d, addrs(10)[i], 502, 5)
	}
	if got := d.Stats().Ejected; got != 1 {
		t.Fatalf("ejected %d, want 1 (10%% of 10)", got)
	}
	c.Advance(30 * time.Second)
	if got := d.Stats().Ejected; got != 0 {
		t.Fatalf("ejected %d after 30 s, want 0", got)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*clusterv3.OutlierDetection)
		unsupported bool
	}{
		{"success rate by default", func(od *clusterv3.OutlierDetection) { od.EnforcingSuccessRate = nil }, true},
		{"success rate", func(od *clusterv3.OutlierDetection) { od.EnforcingSuccessRate = wrapperspb.UInt32(100) }, true},
		{"failure percentage", func(od *clusterv3.OutlierDetection) { od.EnforcingFailurePercentage = wrapperspb.UInt32(50) }, true},
		{"split local origin", func(od *clusterv3.OutlierDetection) { od.SplitExternalLocalOriginErrors = true }, true},
		{"jitter", func(od *clusterv3.OutlierDetection) { od.MaxEjectionTimeJitter = durationpb.New(time.Second) }, true},
		{"degraded", func(od *clusterv3.OutlierDetection) { od.DetectDegradedHosts = wrapperspb.Bool(true) }, true},
		{"monitors", func(od *clusterv3.OutlierDetection) { od.Monitors = []*corev3.TypedExtensionConfig{{Name: "m"}} }, true},
		{"enforcing 50", func(od *clusterv3.OutlierDetection) { od.EnforcingConsecutive_5Xx = wrapperspb.UInt32(50) }, true},
		{"zero interval", func(od *clusterv3.OutlierDetection) { od.Interval = durationpb.New(0) }, false},
		{"negative base", func(od *clusterv3.OutlierDetection) { od.BaseEjectionTime = durationpb.New(-time.Second) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			od := translated()
			tt.edit(od)
			d, err := New(od, nil)
			if err == nil {
				t.Fatalf("New = %v, nil; want error", d)
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(%q, ErrUnsupported) = %v, want %v", err, got, tt.unsupported)
			}
		})
	}
}

// TestConcurrent runs reports, reads and endpoint changes together under
// -race; ejections never exceed the percentage.
func TestConcurrent(t *testing.T) {
	d, c := newDetector(t, translated(), 10) // 50%
	all := addrs(10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				a := all[(g+i)%len(all)]
				status := 200
				if i%7 != 0 {
					status = 503
				}
				d.Report(a, status, i%11 == 0)
				d.Ejected(a)
				// Shrinking the endpoint set keeps ejections, so the bound
				// holds only while the set is at its largest.
				if s := d.Stats(); s.Endpoints == len(all) && s.Ejected > s.Endpoints/2 {
					t.Errorf("ejected %d of %d, over 50%%", s.Ejected, s.Endpoints)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			c.Advance(time.Second)
			d.SetEndpoints(all[:5+i%6])
		}
	})
	wg.Wait()
	if got := d.Stats().EjectionsTotal; got == 0 {
		t.Error("no ejections")
	}
}

func BenchmarkReport(b *testing.B) {
	d, _ := newDetector(b, translated(), 100)
	b.Run("success", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d.Report(a1, 200, false)
		}
	})
	b.Run("5xx", func(b *testing.B) { // ejects every 5th; one of 100 at most is ejected at a time
		b.ReportAllocs()
		for b.Loop() {
			d.Report(a2, 503, false)
		}
	})
	b.Run("success/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Report(a3, 200, false)
			}
		})
	})
}

func BenchmarkEjected(b *testing.B) {
	d, _ := newDetector(b, translated(), 100)
	report(d, a1, 500, 5)
	for _, a := range []string{a1, a2} {
		b.Run(fmt.Sprintf("ejected=%v", d.Ejected(a)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.Ejected(a)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d.Ejected(a1)
			}
		})
	})
}
