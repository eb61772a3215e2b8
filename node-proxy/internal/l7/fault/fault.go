package fault

import (
	"errors"
	"fmt"
	"math"
	"time"

	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// ErrUnsupported is wrapped by every error Compile returns for a field
// the proxy does not implement.
var ErrUnsupported = errors.New("unsupported")

// grpcAbortHTTPStatus is the HTTP status of a gRPC abort sent to a
// non-gRPC request (Envoy's local reply uses 503 Service Unavailable).
const grpcAbortHTTPStatus = 503

// Fault is a compiled HTTPFault. The zero value and nil inject nothing.
// A Fault is immutable and safe for concurrent use.
type Fault struct {
	delay      time.Duration
	delayPct   fraction // zero: no delay
	abortPct   fraction // zero: no abort
	httpStatus int
	grpcStatus int
	hasGRPC    bool
}

// fraction is a FractionalPercent: a draw r hits when r%den < num.
type fraction struct {
	num, den uint64
}

func (f fraction) hit(r uint64) bool { return f.num > 0 && r%f.den < f.num }

// Decision says what to inject into one request. The zero value injects
// nothing.
type Decision struct {
	Delay      time.Duration // wait this long before forwarding; 0 = no delay
	Abort      bool          // answer locally instead of forwarding (after Delay)
	HTTPStatus int           // status of the local answer when Abort (503 for a gRPC abort to a non-gRPC request)
	GRPCStatus int           // grpc-status of the local answer when Abort and HasGRPC
	HasGRPC    bool          // the abort carries a gRPC status: gRPC requests get a trailers-only answer with it
}

// Compile checks an HTTPFault and compiles it. nil compiles to nil, which
// injects nothing. Fields outside the subset Weft emits (fixed delay,
// HTTP or gRPC abort, each with a percentage) are an error wrapping
// ErrUnsupported; runtime key names are ignored (the proxy has no runtime).
func Compile(hf *faultv3.HTTPFault) (*Fault, error) {
	if hf == nil {
		return nil, nil
	}
	switch {
	case hf.GetUpstreamCluster() != "":
		return nil, unsupported("upstream_cluster")
	case len(hf.GetHeaders()) > 0:
		return nil, unsupported("headers")
	case len(hf.GetDownstreamNodes()) > 0:
		return nil, unsupported("downstream_nodes")
	case hf.GetMaxActiveFaults() != nil:
		return nil, unsupported("max_active_faults")
	case hf.GetResponseRateLimit() != nil:
		return nil, unsupported("response_rate_limit")
	case hf.GetFilterMetadata() != nil:
		return nil, unsupported("filter_metadata")
	}
	f := &Fault{}
	if d := hf.GetDelay(); d != nil {
		if err := f.compileDelay(d); err != nil {
			return nil, fmt.Errorf("fault delay: %w", err)
		}
	}
	if a := hf.GetAbort(); a != nil {
		if err := f.compileAbort(a); err != nil {
			return nil, fmt.Errorf("fault abort: %w", err)
		}
	}
	return f, nil
}

func (f *Fault) compileDelay(d *commonfaultv3.FaultDelay) error {
	switch s := d.GetFaultDelaySecifier().(type) {
	case *commonfaultv3.FaultDelay_FixedDelay:
		if err := s.FixedDelay.CheckValid(); err != nil {
			return fmt.Errorf("fixed_delay: %w", err)
		}
		f.delay = s.FixedDelay.AsDuration()
		if f.delay < 0 {
			return fmt.Errorf("fixed_delay %v is negative", f.delay)
		}
	case *commonfaultv3.FaultDelay_HeaderDelay_:
		return unsupported("header_delay")
	default:
		return errors.New("no fixed_delay")
	}
	p, err := compileFraction(d.GetPercentage())
	if err != nil {
		return err
	}
	if f.delay > 0 { // Envoy injects no zero delay
		f.delayPct = p
	}
	return nil
}

func (f *Fault) compileAbort(a *faultv3.FaultAbort) error {
	switch s := a.GetErrorType().(type) {
	case *faultv3.FaultAbort_HttpStatus:
		if s.HttpStatus < 200 || s.HttpStatus >= 600 {
			return fmt.Errorf("http_status %d not in [200, 600)", s.HttpStatus)
		}
		f.httpStatus = int(s.HttpStatus)
	case *faultv3.FaultAbort_GrpcStatus:
		if s.GrpcStatus > math.MaxInt32 {
			return fmt.Errorf("grpc_status %d out of range", s.GrpcStatus)
		}
		f.httpStatus, f.grpcStatus, f.hasGRPC = grpcAbortHTTPStatus, int(s.GrpcStatus), true
	case *faultv3.FaultAbort_HeaderAbort_:
		return unsupported("header_abort")
	default:
		return errors.New("no http_status or grpc_status")
	}
	p, err := compileFraction(a.GetPercentage())
	if err != nil {
		return err
	}
	f.abortPct = p
	return nil
}

// compileFraction follows Envoy: an absent percentage is 0 (never), a
// numerator above the denominator is 100%.
func compileFraction(p *typev3.FractionalPercent) (fraction, error) {
	if p == nil || p.GetNumerator() == 0 {
		return fraction{}, nil
	}
	var den uint64
	switch p.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10_000
	case typev3.FractionalPercent_MILLION:
		den = 1_000_000
	default:
		return fraction{}, fmt.Errorf("percentage denominator %v: %w", p.GetDenominator(), ErrUnsupported)
	}
	return fraction{num: min(uint64(p.GetNumerator()), den), den: den}, nil
}

func unsupported(field string) error {
	return fmt.Errorf("%s: %w", field, ErrUnsupported)
}

// Decide draws the faults for one request. rnd returns uniformly
// distributed values (math/rand/v2's Uint64, or a seeded source in tests);
// it is called once for the delay and once for the abort, only for the
// faults that are configured, and each hits when rnd()%denominator <
// numerator, as in Envoy. Decide does not allocate.
func (f *Fault) Decide(rnd func() uint64) Decision {
	var d Decision
	if f == nil {
		return d
	}
	if f.delayPct.num > 0 && f.delayPct.hit(rnd()) {
		d.Delay = f.delay
	}
	if f.abortPct.num > 0 && f.abortPct.hit(rnd()) {
		d.Abort, d.HTTPStatus, d.GRPCStatus, d.HasGRPC = true, f.httpStatus, f.grpcStatus, f.hasGRPC
	}
	return d
}
