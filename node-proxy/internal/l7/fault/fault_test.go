package fault

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func pct(n uint32, den typev3.FractionalPercent_DenominatorType) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n, Denominator: den}
}

func delay(d time.Duration, p *typev3.FractionalPercent) *commonfaultv3.FaultDelay {
	return &commonfaultv3.FaultDelay{
		FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage:         p,
	}
}

func httpAbort(status uint32, p *typev3.FractionalPercent) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status}, Percentage: p}
}

func grpcAbort(status uint32, p *typev3.FractionalPercent) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: status}, Percentage: p}
}

// seq returns the values in turn and fails the test if asked for more.
func seq(t *testing.T, vs ...uint64) func() uint64 {
	return func() uint64 {
		if len(vs) == 0 {
			t.Fatal("rnd called more often than expected")
		}
		v := vs[0]
		vs = vs[1:]
		return v
	}
}

const (
	hundred = typev3.FractionalPercent_HUNDRED
	tenK    = typev3.FractionalPercent_TEN_THOUSAND
	million = typev3.FractionalPercent_MILLION
)

func TestDecide(t *testing.T) {
	abort503 := Decision{Abort: true, HTTPStatus: 503}
	delay100 := Decision{Delay: 100 * time.Millisecond}
	tests := []struct {
		name string
		hf   *faultv3.HTTPFault
		rnd  []uint64 // draws, in order: delay then abort
		want Decision
	}{
		{"nil config", nil, nil, Decision{}},
		{"empty config", &faultv3.HTTPFault{}, nil, Decision{}},
		{"abort 25% r=0", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{0}, abort503},
		{"abort 25% r=24", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{24}, abort503},
		{"abort 25% r=25", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{25}, Decision{}},
		{"abort 25% r=99", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{99}, Decision{}},
		{"abort 25% r=124 wraps", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{124}, abort503},
		{"abort 25% r=125 wraps", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{125}, Decision{}},
		{"abort 25% r=max", &faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))}, []uint64{^uint64(0)}, abort503}, // (2^64-1) % 100 = 15
		{"abort 2500/10k r=2499", &faultv3.HTTPFault{Abort: httpAbort(503, pct(2500, tenK))}, []uint64{2499}, abort503},
		{"abort 2500/10k r=2500", &faultv3.HTTPFault{Abort: httpAbort(503, pct(2500, tenK))}, []uint64{2500}, Decision{}},
		{"abort 1/1M r=0", &faultv3.HTTPFault{Abort: httpAbort(503, pct(1, million))}, []uint64{0}, abort503},
		{"abort 1/1M r=1", &faultv3.HTTPFault{Abort: httpAbort(503, pct(1, million))}, []uint64{1}, Decision{}},
		{"abort 100% r=99", &faultv3.HTTPFault{Abort: httpAbort(503, pct(100, hundred))}, []uint64{99}, abort503},
		{"numerator above denominator is 100%", &faultv3.HTTPFault{Abort: httpAbort(503, pct(250, hundred))}, []uint64{99}, abort503},
		{"abort 0% draws nothing", &faultv3.HTTPFault{Abort: httpAbort(503, pct(0, hundred))}, nil, Decision{}},
		{"abort without percentage never", &faultv3.HTTPFault{Abort: httpAbort(503, nil)}, nil, Decision{}},
		{"grpc abort", &faultv3.HTTPFault{Abort: grpcAbort(14, pct(50, hundred))}, []uint64{49}, Decision{Abort: true, HTTPStatus: 503, GRPCStatus: 14, HasGRPC: true}},
		{"grpc abort miss", &faultv3.HTTPFault{Abort: grpcAbort(14, pct(50, hundred))}, []uint64{50}, Decision{}},
		{"delay 10% r=9", &faultv3.HTTPFault{Delay: delay(100*time.Millisecond, pct(10, hundred))}, []uint64{9}, delay100},
		{"delay 10% r=10", &faultv3.HTTPFault{Delay: delay(100*time.Millisecond, pct(10, hundred))}, []uint64{10}, Decision{}},
		{"zero delay draws nothing", &faultv3.HTTPFault{Delay: delay(0, pct(100, hundred))}, nil, Decision{}},
		{
			"both hit",
			&faultv3.HTTPFault{Delay: delay(100*time.Millisecond, pct(10, hundred)), Abort: httpAbort(500, pct(25, hundred))},
			[]uint64{0, 0}, Decision{Delay: 100 * time.Millisecond, Abort: true, HTTPStatus: 500},
		},
		{
			"independent draws: delay misses, abort hits",
			&faultv3.HTTPFault{Delay: delay(100*time.Millisecond, pct(10, hundred)), Abort: httpAbort(500, pct(25, hundred))},
			[]uint64{10, 24}, Decision{Abort: true, HTTPStatus: 500},
		},
		{
			"independent draws: delay hits, abort misses",
			&faultv3.HTTPFault{Delay: delay(100*time.Millisecond, pct(10, hundred)), Abort: httpAbort(500, pct(25, hundred))},
			[]uint64{9, 25}, delay100,
		},
		{
			"runtime keys ignored",
			&faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred)), AbortPercentRuntime: "fault.abort", DisableDownstreamClusterStats: true},
			[]uint64{0}, abort503,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.hf)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got := f.Decide(seq(t, tt.rnd...))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name        string
		hf          *faultv3.HTTPFault
		unsupported bool
	}{
		{"header_delay", &faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{FaultDelaySecifier: &commonfaultv3.FaultDelay_HeaderDelay_{HeaderDelay: &commonfaultv3.FaultDelay_HeaderDelay{}}}}, true},
		{"header_abort", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}}}, true},
		{"headers", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: "x"}}}, true},
		{"upstream_cluster", &faultv3.HTTPFault{UpstreamCluster: "c"}, true},
		{"downstream_nodes", &faultv3.HTTPFault{DownstreamNodes: []string{"n"}}, true},
		{"max_active_faults", &faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(1)}, true},
		{"response_rate_limit", &faultv3.HTTPFault{ResponseRateLimit: &commonfaultv3.FaultRateLimit{}}, true},
		{"bad denominator", &faultv3.HTTPFault{Abort: httpAbort(503, pct(1, typev3.FractionalPercent_DenominatorType(7)))}, true},
		{"no delay kind", &faultv3.HTTPFault{Delay: &commonfaultv3.FaultDelay{}}, false},
		{"no abort kind", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{}}, false},
		{"http_status 199", &faultv3.HTTPFault{Abort: httpAbort(199, pct(1, hundred))}, false},
		{"http_status 600", &faultv3.HTTPFault{Abort: httpAbort(600, pct(1, hundred))}, false},
		{"negative delay", &faultv3.HTTPFault{Delay: delay(-time.Second, pct(1, hundred))}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.hf)
			if err == nil {
				t.Fatalf("Compile = %+v, nil; want error", f)
			}
			if got := errors.Is(err, ErrUnsupported); got != tt.unsupported {
				t.Errorf("errors.Is(%q, ErrUnsupported) = %v, want %v", err, got, tt.unsupported)
			}
		})
	}
}

// TestAbortRate draws 100k decisions from a seeded source: a 25% abort
// must land within one point of 25%, and the delay (10%) independently.
func TestAbortRate(t *testing.T) {
	for _, den := range []typev3.FractionalPercent_DenominatorType{hundred, tenK, million} {
		scale := map[typev3.FractionalPercent_DenominatorType]uint32{hundred: 1, tenK: 100, million: 10_000}[den]
		f, err := Compile(&faultv3.HTTPFault{
			Delay: delay(time.Millisecond, pct(10*scale, den)),
			Abort: httpAbort(503, pct(25*scale, den)),
		})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		const n = 100_000
		var aborts, delays, both int
		for range n {
			d := f.Decide(r.Uint64)
			if d.Abort {
				aborts++
			}
			if d.Delay > 0 {
				delays++
			}
			if d.Abort && d.Delay > 0 {
				both++
			}
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"abort", float64(aborts) / n, 0.25},
			{"delay", float64(delays) / n, 0.10},
			{"both", float64(both) / n, 0.025}, // independent draws
		} {
			if c.got < c.want-0.01 || c.got > c.want+0.01 {
				t.Errorf("%v: %s rate = %.4f, want %.3f ± 0.01", den, c.name, c.got, c.want)
			}
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	f, err := Compile(&faultv3.HTTPFault{
		Delay: delay(100*time.Millisecond, pct(10, hundred)),
		Abort: grpcAbort(14, pct(25, hundred)),
	})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	rnd := r.Uint64
	b.ReportAllocs()
	var n int
	for b.Loop() {
		if f.Decide(rnd).Abort {
			n++
		}
	}
	_ = n
}

func BenchmarkDecideParallel(b *testing.B) {
	f, err := Compile(&faultv3.HTTPFault{Abort: httpAbort(503, pct(25, hundred))})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f.Decide(rand.Uint64)
		}
	})
}
