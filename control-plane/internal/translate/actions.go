package translate

import (
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	commonfaultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// What a route does with a matched request: header changes, timeouts,
// retries and fault injection.

// faultFilterName keys the per-route fault configuration; it is the name
// of the fault filter in the listener's HttpConnectionManager.
const faultFilterName = wellknown.Fault

// headerOps converts a header modifier filter: set overwrites, add
// appends.
func headerOps(h *model.HeaderModifier) ([]*corev3.HeaderValueOption, []string) {
	if h == nil {
		return nil, nil
	}
	var add []*corev3.HeaderValueOption
	for _, s := range h.Set {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: s.Name, Value: s.Value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, a := range h.Add {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: a.Name, Value: a.Value},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	var remove []string
	if len(h.Remove) > 0 {
		remove = append(remove, h.Remove...)
	}
	return add, remove
}

// applyTimeoutsAndRetry sets the route timeout and retry policy.
//
// Timeout: the rule's timeouts.request, else the TrafficPolicy's
// timeouts.request. With no retry policy, a rule's backendRequest also
// bounds the only attempt. No timeout is written as 0s, which disables
// Envoy's 15 s default: Gateway API has no default timeout. The same value
// goes to max_stream_duration, the field gRPC clients read as a deadline.
// A TrafficPolicy's timeouts.idle becomes the route's stream idle_timeout.
func applyTimeoutsAndRetry(a *routev3.RouteAction, pol effectivePolicy, rule *model.RouteRule) {
	var request, backend time.Duration
	if pol.Timeouts != nil {
		request = pol.Timeouts.Request
		if pol.Timeouts.Idle > 0 {
			a.IdleTimeout = durationpb.New(pol.Timeouts.Idle)
		}
	}
	if rule.Timeouts != nil {
		if rule.Timeouts.Request > 0 {
			request = rule.Timeouts.Request
		}
		backend = rule.Timeouts.BackendRequest
	}
	a.RetryPolicy = retryPolicy(pol.Retry, rule.Retry, backend)
	if a.RetryPolicy == nil && backend > 0 && (request == 0 || backend < request) {
		request = backend
	}
	a.Timeout = durationpb.New(request)
	if request > 0 {
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(request)}
	}
}

// retryPolicy merges the TrafficPolicy retry with the rule's Gateway API
// retry, which wins where it says something: attempts (when > 0), backoff
// (the base interval) and codes (retried as retriable-status-codes, on
// top of the policy's conditions, or of connect-failure and reset when no
// policy retries). The rule's backendRequest timeout is the per-try
// timeout. No attempts, no policy: gRPC clients refuse num_retries 0.
func retryPolicy(tp *model.RetryPolicy, rr *model.RouteRetry, backendTimeout time.Duration) *routev3.RetryPolicy {
	if tp == nil && rr == nil {
		return nil
	}
	var (
		attempts   int32
		retryOn    = model.DefaultRetryOn
		codes      []int32
		base, max  time.Duration
		perTry     time.Duration
		needsCodes bool
	)
	if tp != nil {
		attempts = tp.Attempts
		if len(tp.RetryOn) > 0 {
			retryOn = tp.RetryOn
		}
		codes = tp.RetriableStatusCodes
		base, max, perTry = tp.BackoffBase, tp.BackoffMax, tp.PerTryTimeout
	}
	if rr != nil {
		if rr.Attempts > 0 {
			attempts = rr.Attempts
		}
		if rr.Backoff > 0 {
			base, max = rr.Backoff, 0
		}
		if len(rr.Codes) > 0 {
			codes = rr.Codes
			needsCodes = true
			if tp == nil {
				retryOn = []string{"connect-failure", "reset"}
			}
		}
	}
	if backendTimeout > 0 {
		perTry = backendTimeout
	}
	if attempts <= 0 {
		return nil
	}
	on := append([]string(nil), retryOn...)
	if needsCodes && !contains(on, "retriable-status-codes") {
		on = append(on, "retriable-status-codes")
	}
	if base <= 0 {
		base = model.DefaultBackoffBase
	}
	if max <= 0 {
		max = 10 * base
	}
	p := &routev3.RetryPolicy{
		RetryOn:      strings.Join(on, ","),
		NumRetries:   wrapperspb.UInt32(uint32(attempts)),
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(base), MaxInterval: durationpb.New(max)},
	}
	if perTry > 0 {
		p.PerTryTimeout = durationpb.New(perTry)
	}
	for _, c := range codes {
		p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(c))
	}
	return p
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// faultConfig is the per-route configuration of the fault filter: a fixed
// delay and an abort (HTTP status or gRPC status), each for a percentage
// of requests. nil when the policy injects nothing.
func faultConfig(f *model.FaultPolicy) *anypb.Any {
	if f == nil {
		return nil
	}
	hf := &faultv3.HTTPFault{}
	if f.DelayPercent > 0 && f.Delay > 0 {
		hf.Delay = &commonfaultv3.FaultDelay{
			FaultDelaySecifier: &commonfaultv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(f.Delay)},
			Percentage:         percent(f.DelayPercent),
		}
	}
	if f.AbortPercent > 0 {
		switch {
		case f.AbortGRPCCode > 0:
			hf.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(f.AbortGRPCCode)}, Percentage: percent(f.AbortPercent)}
		case f.AbortHTTP > 0:
			hf.Abort = &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(f.AbortHTTP)}, Percentage: percent(f.AbortPercent)}
		}
	}
	if hf.Delay == nil && hf.Abort == nil {
		return nil
	}
	return mustAny(hf)
}

func percent(p int32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(min(p, 100)), Denominator: typev3.FractionalPercent_HUNDRED}
}

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }
