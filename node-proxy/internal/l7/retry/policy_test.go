package retry

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func grpc(c int) *int { return &c }

// rp is a RetryPolicy as translate emits it.
func rp(on string, codes ...uint32) *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		RetryOn:              on,
		NumRetries:           wrapperspb.UInt32(2),
		RetriableStatusCodes: codes,
		RetryBackOff: &routev3.RetryPolicy_RetryBackOff{
			BaseInterval: durationpb.New(25 * time.Millisecond),
			MaxInterval:  durationpb.New(250 * time.Millisecond),
		},
	}
}

func TestRetriable(t *testing.T) {
	const defaultOn = "5xx,gateway-error,reset,connect-failure,unavailable"
	const grpcAll = "cancelled,deadline-exceeded,resource-exhausted,unavailable,internal"
	tests := []struct {
		name          string
		policy        *routev3.RetryPolicy
		status        int
		grpc          *int
		reset         bool
		connectFailed bool
		want          bool
	}{
		{"default: 500", rp(defaultOn), 500, nil, false, false, true},
		{"default: 503", rp(defaultOn), 503, nil, false, false, true},
		{"default: 599", rp(defaultOn), 599, nil, false, false, true},
		{"default: 200", rp(defaultOn), 200, nil, false, false, false},
		{"default: 404", rp(defaultOn), 404, nil, false, false, false},
		{"default: 429", rp(defaultOn), 429, nil, false, false, false},
		{"default: reset", rp(defaultOn), 0, nil, true, false, true},
		{"default: connect failure", rp(defaultOn), 0, nil, false, true, true},
		{"default: grpc unavailable", rp(defaultOn), 200, grpc(14), false, false, true},
		{"default: grpc internal", rp(defaultOn), 200, grpc(13), false, false, false},
		{"default: grpc ok", rp(defaultOn), 200, grpc(0), false, false, false},

		{"gateway-error: 502", rp("gateway-error"), 502, nil, false, false, true},
		{"gateway-error: 504", rp("gateway-error"), 504, nil, false, false, true},
		{"gateway-error: 500", rp("gateway-error"), 500, nil, false, false, false},
		{"gateway-error: reset", rp("gateway-error"), 0, nil, true, false, true},
		{"gateway-error: connect failure", rp("gateway-error"), 0, nil, false, true, true},

		{"5xx: reset", rp("5xx"), 0, nil, true, false, true},
		{"5xx: connect failure", rp("5xx"), 0, nil, false, true, true},
		{"5xx: 499", rp("5xx"), 499, nil, false, false, false},
		{"5xx: 600", rp("5xx"), 600, nil, false, false, false},

		{"reset: reset", rp("reset"), 0, nil, true, false, true},
		{"reset: connect failure", rp("reset"), 0, nil, false, true, true},
		{"reset: 503", rp("reset"), 503, nil, false, false, false},

		{"connect-failure: connect failure", rp("connect-failure"), 0, nil, false, true, true},
		{"connect-failure: reset", rp("connect-failure"), 0, nil, true, false, false},
		{"connect-failure: 503", rp("connect-failure"), 503, nil, false, false, false},

		{"codes: listed 503", rp("connect-failure,reset,retriable-status-codes", 503), 503, nil, false, false, true},
		{"codes: unlisted 502", rp("connect-failure,reset,retriable-status-codes", 503), 502, nil, false, false, false},
		{"codes: 409", rp("5xx,retriable-status-codes", 409), 409, nil, false, false, true},
		{"codes: 500 via 5xx", rp("5xx,retriable-status-codes", 409), 500, nil, false, false, true},
		{"codes without condition", rp("5xx", 409), 409, nil, false, false, false},

		{"grpc: cancelled", rp(grpcAll), 200, grpc(1), false, false, true},
		{"grpc: deadline-exceeded", rp(grpcAll), 200, grpc(4), false, false, true},
		{"grpc: resource-exhausted", rp(grpcAll), 200, grpc(8), false, false, true},
		{"grpc: internal", rp(grpcAll), 200, grpc(13), false, false, true},
		{"grpc: unavailable", rp(grpcAll), 200, grpc(14), false, false, true},
		{"grpc: unknown", rp(grpcAll), 200, grpc(2), false, false, false},
		{"grpc: not found", rp(grpcAll), 200, grpc(5), false, false, false},
		{"grpc: HTTP 503 without http conditions", rp(grpcAll), 503, nil, false, false, false},
		{"grpc: reset without http conditions", rp(grpcAll), 0, nil, true, false, false},
		{"grpc: only deadline", rp("deadline-exceeded"), 200, grpc(14), false, false, false},

		{"nil policy", nil, 503, nil, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy(tt.policy)
			if err != nil {
				t.Fatalf("NewPolicy: %v", err)
			}
			if got := p.Retriable(tt.status, tt.grpc, tt.reset, tt.connectFailed); got != tt.want {
				t.Errorf("Retriable(%d, %v, reset=%v, connectFailed=%v) under %q = %v, want %v",
					tt.status, tt.grpc, tt.reset, tt.connectFailed, tt.policy.GetRetryOn(), got, tt.want)
			}
		})
	}
}

func TestNewPolicy(t *testing.T) {
	full := rp("connect-failure, reset,retriable-status-codes,", 503)
	full.PerTryTimeout = durationpb.New(time.Second)
	full.RetryBackOff.BaseInterval = durationpb.New(100 * time.Millisecond)
	full.RetryBackOff.MaxInterval = durationpb.New(time.Second)

	baseOnly := rp("5xx")
	baseOnly.RetryBackOff.MaxInterval = nil
	baseOnly.RetryBackOff.BaseInterval = durationpb.New(50 * time.Millisecond)

	tests := []struct {
		name    string
		in      *routev3.RetryPolicy
		want    Policy
		wantErr string
	}{
		{"nil", nil, Policy{}, ""},
		{"translate output", full, Policy{Attempts: 2, PerTryTimeout: time.Second,
			BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second,
			On: OnConnectFailure | OnReset | OnRetriableStatusCodes}, ""},
		{"envoy defaults", &routev3.RetryPolicy{RetryOn: "5xx"}, Policy{Attempts: 1,
			BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond, On: On5xx}, ""},
		{"max defaults to 10x base", baseOnly, Policy{Attempts: 2,
			BackoffBase: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, On: On5xx}, ""},
		{"unknown token", rp("5xx,retriable-4xx,bogus"), Policy{},
			`retry policy: unknown retry_on condition "retriable-4xx", "bogus" (known: 5xx, gateway-error, reset, connect-failure, retriable-status-codes, cancelled, deadline-exceeded, resource-exhausted, internal, unavailable)`},
		{"bad status code", rp("retriable-status-codes", 99), Policy{}, "retriable status code 99 is not between 100 and 599"},
		{"max below base", func() *routev3.RetryPolicy {
			p := rp("5xx")
			p.RetryBackOff.MaxInterval = durationpb.New(time.Millisecond)
			return p
		}(), Policy{}, "max_interval 1ms is below base_interval 25ms"},
		{"unsupported", func() *routev3.RetryPolicy {
			p := rp("5xx")
			p.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}
			p.RetriableHeaders = []*routev3.HeaderMatcher{{Name: "x"}}
			return p
		}(), Policy{}, "unsupported fields: retry_host_predicate, retriable_headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPolicy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewPolicy error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewPolicy: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreUnexported(Policy{})); diff != "" {
				t.Errorf("NewPolicy mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConditionString(t *testing.T) {
	const in = "5xx,gateway-error,reset,connect-failure,retriable-status-codes,cancelled,deadline-exceeded,resource-exhausted,internal,unavailable"
	c, err := ParseRetryOn(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != in {
		t.Errorf("String() = %q, want %q", got, in)
	}
}
