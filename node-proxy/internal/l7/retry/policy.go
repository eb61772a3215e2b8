package retry

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Condition is one retry_on token, as a bit.
type Condition uint16

// The retry_on conditions translate emits (the TrafficPolicy retryOn
// enum). Names and meanings follow Envoy's x-envoy-retry-on and
// x-envoy-retry-grpc-on.
const (
	// On5xx retries any 5xx status, resets before the response and
	// connect failures.
	On5xx Condition = 1 << iota
	// OnGatewayError retries 502, 503 and 504, resets before the response
	// and connect failures.
	OnGatewayError
	// OnReset retries resets before the response and connect failures.
	OnReset
	// OnConnectFailure retries connect failures.
	OnConnectFailure
	// OnRetriableStatusCodes retries the statuses of
	// retriable_status_codes.
	OnRetriableStatusCodes
	// The gRPC conditions retry a grpc-status, whatever the HTTP status.
	OnCancelled         // grpc-status 1
	OnDeadlineExceeded  // grpc-status 4
	OnResourceExhausted // grpc-status 8
	OnInternal          // grpc-status 13
	OnUnavailable       // grpc-status 14
)

// conditionNames are the retry_on tokens, in the order errors list them.
var conditionNames = []struct {
	name string
	c    Condition
}{
	{"5xx", On5xx},
	{"gateway-error", OnGatewayError},
	{"reset", OnReset},
	{"connect-failure", OnConnectFailure},
	{"retriable-status-codes", OnRetriableStatusCodes},
	{"cancelled", OnCancelled},
	{"deadline-exceeded", OnDeadlineExceeded},
	{"resource-exhausted", OnResourceExhausted},
	{"internal", OnInternal},
	{"unavailable", OnUnavailable},
}

// gRPC status codes of the gRPC conditions.
const (
	grpcCancelled         = 1
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcInternal          = 13
	grpcUnavailable       = 14
)

// Policy is a compiled route retry policy. The zero Policy never retries.
type Policy struct {
	// Attempts is the number of retries after the first try; 0 disables
	// retries.
	Attempts int
	// PerTryTimeout bounds each attempt; 0 means only the route timeout.
	PerTryTimeout time.Duration
	// BackoffBase and BackoffMax configure Backoff; never zero in a
	// Policy from NewPolicy.
	BackoffBase, BackoffMax time.Duration
	// On is the set of retry conditions.
	On Condition

	codes map[int]struct{} // retriable_status_codes
}

// NewPolicy compiles the retry policy of an Envoy RouteAction as the
// control plane's translate emits it. A nil policy compiles to the zero
// Policy (no retries). Unknown retry_on tokens, status codes outside 100
// to 599 and Envoy features the proxy does not implement are errors.
// Unset fields get Envoy's defaults: one retry, a 25 ms backoff base, and
// a maximum of ten times the base.
func NewPolicy(rp *routev3.RetryPolicy) (Policy, error) {
	if rp == nil {
		return Policy{}, nil
	}
	if err := unsupported(rp); err != nil {
		return Policy{}, err
	}
	p := Policy{Attempts: 1, BackoffBase: DefaultBackoffBase}
	if n := rp.GetNumRetries(); n != nil {
		p.Attempts = int(n.GetValue())
	}
	if d := rp.GetPerTryTimeout(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return Policy{}, fmt.Errorf("retry policy: invalid per_try_timeout %v", d)
		}
		p.PerTryTimeout = d.AsDuration()
	}
	if bo := rp.GetRetryBackOff(); bo != nil {
		if d := bo.GetBaseInterval(); d != nil && d.AsDuration() > 0 {
			p.BackoffBase = d.AsDuration()
		}
		if d := bo.GetMaxInterval(); d != nil && d.AsDuration() > 0 {
			p.BackoffMax = d.AsDuration()
		}
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = DefaultBackoffMaxFactor * p.BackoffBase
	}
	if p.BackoffMax < p.BackoffBase {
		return Policy{}, fmt.Errorf("retry policy: retry_back_off max_interval %v is below base_interval %v", p.BackoffMax, p.BackoffBase)
	}
	on, err := ParseRetryOn(rp.GetRetryOn())
	if err != nil {
		return Policy{}, fmt.Errorf("retry policy: %w", err)
	}
	p.On = on
	for _, c := range rp.GetRetriableStatusCodes() {
		if c < 100 || c > 599 {
			return Policy{}, fmt.Errorf("retry policy: retriable status code %d is not between 100 and 599", c)
		}
		if p.codes == nil {
			p.codes = make(map[int]struct{}, len(rp.GetRetriableStatusCodes()))
		}
		p.codes[int(c)] = struct{}{}
	}
	return p, nil
}

// unsupported rejects RetryPolicy fields translate never sets and the
// proxy does not implement, rather than silently ignoring them.
func unsupported(rp *routev3.RetryPolicy) error {
	var f []string
	if rp.GetPerTryIdleTimeout() != nil {
		f = append(f, "per_try_idle_timeout")
	}
	if rp.GetRetryPriority() != nil {
		f = append(f, "retry_priority")
	}
	if len(rp.GetRetryHostPredicate()) > 0 {
		f = append(f, "retry_host_predicate")
	}
	if len(rp.GetRetryOptionsPredicates()) > 0 {
		f = append(f, "retry_options_predicates")
	}
	if rp.GetRateLimitedRetryBackOff() != nil {
		f = append(f, "rate_limited_retry_back_off")
	}
	if len(rp.GetRetriableHeaders()) > 0 {
		f = append(f, "retriable_headers")
	}
	if len(rp.GetRetriableRequestHeaders()) > 0 {
		f = append(f, "retriable_request_headers")
	}
	if len(f) > 0 {
		return fmt.Errorf("retry policy: unsupported fields: %s", strings.Join(f, ", "))
	}
	return nil
}

// ParseRetryOn parses a comma-separated retry_on value. Spaces around
// tokens and empty tokens are ignored; an unknown token is an error that
// names it and lists the known ones.
func ParseRetryOn(s string) (Condition, error) {
	var on Condition
	var unknown []string
	for tok := range strings.SplitSeq(s, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		c, ok := conditionOf(tok)
		if !ok {
			unknown = append(unknown, strconv.Quote(tok))
			continue
		}
		on |= c
	}
	if len(unknown) > 0 {
		known := make([]string, len(conditionNames))
		for i, n := range conditionNames {
			known[i] = n.name
		}
		return 0, fmt.Errorf("unknown retry_on condition %s (known: %s)", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return on, nil
}

func conditionOf(name string) (Condition, bool) {
	for _, n := range conditionNames {
		if n.name == name {
			return n.c, true
		}
	}
	return 0, false
}

// String lists the conditions as a retry_on value.
func (c Condition) String() string {
	var l []string
	for _, n := range conditionNames {
		if c&n.c != 0 {
			l = append(l, n.name)
		}
	}
	return strings.Join(l, ",")
}

// Retriable reports whether an attempt's outcome is retried under the
// policy's conditions (the caller still checks Attempts, the budget and
// whether the body can be replayed):
//
//   - connectFailed: the upstream connection failed; retried on
//     connect-failure, reset, gateway-error or 5xx.
//   - resetBeforeResponse: the stream was reset (or the connection lost)
//     before response headers arrived; retried on reset, gateway-error
//     or 5xx.
//   - otherwise status is the HTTP response status, retried on 5xx
//     (500-599), gateway-error (502, 503, 504) or retriable-status-codes
//     (the listed codes); and grpcStatus, if not nil, is the grpc-status
//     of the response headers or trailers, retried on the matching gRPC
//     condition.
func (p Policy) Retriable(status int, grpcStatus *int, resetBeforeResponse bool, connectFailed bool) bool {
	switch {
	case connectFailed:
		return p.On&(OnConnectFailure|OnReset|OnGatewayError|On5xx) != 0
	case resetBeforeResponse:
		return p.On&(OnReset|OnGatewayError|On5xx) != 0
	}
	if status >= 500 && status <= 599 && p.On&On5xx != 0 {
		return true
	}
	if (status == 502 || status == 503 || status == 504) && p.On&OnGatewayError != 0 {
		return true
	}
	if p.On&OnRetriableStatusCodes != 0 {
		if _, ok := p.codes[status]; ok {
			return true
		}
	}
	if grpcStatus != nil {
		var c Condition
		switch *grpcStatus {
		case grpcCancelled:
			c = OnCancelled
		case grpcDeadlineExceeded:
			c = OnDeadlineExceeded
		case grpcResourceExhausted:
			c = OnResourceExhausted
		case grpcInternal:
			c = OnInternal
		case grpcUnavailable:
			c = OnUnavailable
		}
		return p.On&c != 0
	}
	return false
}

// Backoff is the wait before retry number attempt (1 for the first).
func (p Policy) Backoff(attempt int, rnd func() float64) time.Duration {
	return Backoff(attempt, p.BackoffBase, p.BackoffMax, rnd)
}
