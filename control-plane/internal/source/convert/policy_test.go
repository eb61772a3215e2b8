package convert

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

func TestTrafficPolicy(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want *model.TrafficPolicy
	}{
		{
			name: "every field",
			in: `
metadata: {name: tp, namespace: shop, uid: t1}
spec:
  targetRefs: [{group: "", kind: Service, name: cart, sectionName: http}, {group: core, kind: Service, name: web}]
  retry:
    attempts: 3
    perTryTimeout: 500ms
    retryOn: [5xx, retriable-status-codes]
    retriableStatusCodes: [409]
    backoff: {baseInterval: 10ms, maxInterval: 1s}
    budget: {percent: 0, minRetriesPerSecond: 0}
  timeouts: {request: 5s, idle: 1h}
  faults:
    delay: {fixedDelay: 2s, percentage: 10}
    abort: {grpcStatus: UNAVAILABLE, percentage: 5}
  loadBalancer: {algorithm: LeastRequest}
  outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 100}
  connectionLimits: {maxConnections: 100, maxPendingRequests: 0, maxRequests: 1000}
`,
			want: &model.TrafficPolicy{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "tp", UID: "t1"},
				Targets: []model.PolicyTarget{
					{Index: 0, Kind: "Service", Name: "cart", SectionName: "http"},
					{Index: 1, Group: "core", Kind: "Service", Name: "web"},
				},
				Retry: &model.RetryPolicy{Attempts: 3, PerTryTimeout: 500 * time.Millisecond,
					RetryOn: []string{"5xx", "retriable-status-codes"}, RetriableStatusCodes: []int32{409},
					BackoffBase: 10 * time.Millisecond, BackoffMax: time.Second, BudgetPercent: 0, BudgetMinPerSecond: 0},
				Timeouts:     &model.TimeoutPolicy{Request: 5 * time.Second, Idle: time.Hour},
				Faults:       &model.FaultPolicy{DelayPercent: 10, Delay: 2 * time.Second, AbortPercent: 5, AbortGRPCCode: 14},
				LoadBalancer: model.LBLeastRequest,
				OutlierDetection: &model.OutlierDetection{Consecutive5xx: 5, ConsecutiveGatewayErrors: 3,
					Interval: 5 * time.Second, BaseEjectionTime: time.Minute, MaxEjectionPercent: 100},
				ConnectionLimits: &model.ConnectionLimits{MaxConnections: 100, MaxRequests: 1000},
			},
		},
		{
			name: "defaults",
			in: `
metadata: {name: tp, namespace: shop}
spec:
  targetRefs: [{name: cart}]
  retry: {attempts: 2}
  faults: {abort: {httpStatus: 503, percentage: 50}}
  loadBalancer: {}
  outlierDetection: {consecutive5xxErrors: 1}
`,
			want: &model.TrafficPolicy{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "tp"},
				Targets:    []model.PolicyTarget{{Kind: "Service", Name: "cart"}},
				Retry: &model.RetryPolicy{Attempts: 2, RetryOn: []string{"5xx", "gateway-error", "reset", "connect-failure", "unavailable"},
					BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond, BudgetPercent: 20, BudgetMinPerSecond: 10},
				Faults:       &model.FaultPolicy{AbortPercent: 50, AbortHTTP: 503},
				LoadBalancer: model.LBP2CPeakEWMA,
				OutlierDetection: &model.OutlierDetection{Consecutive5xx: 1, Interval: 10 * time.Second,
					BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 50},
			},
		},
		{
			name: "budget partly set, only the max backoff set",
			in: `
metadata: {name: tp, namespace: shop}
spec:
  targetRefs: [{name: cart}]
  retry: {attempts: 0, backoff: {maxInterval: 2s}, budget: {percent: 50}}
`,
			want: &model.TrafficPolicy{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "tp"},
				Targets:    []model.PolicyTarget{{Kind: "Service", Name: "cart"}},
				Retry: &model.RetryPolicy{RetryOn: []string{"5xx", "gateway-error", "reset", "connect-failure", "unavailable"},
					BackoffBase: 25 * time.Millisecond, BackoffMax: 2 * time.Second, BudgetPercent: 50, BudgetMinPerSecond: 10},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := TrafficPolicy(decode[v1alpha1.TrafficPolicy](t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(got, tc.want); d != "" {
				t.Errorf("TrafficPolicy (-want +got):\n%s", d)
			}
		})
	}
}

func TestTrafficPolicyInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec string
		want []string
	}{
		{"nothing set", `{targetRefs: []}`, []string{"spec.targetRefs: at least one target is required",
			"spec: a TrafficPolicy must set at least one of retry"}},
		{"target not a Service", `{targetRefs: [{kind: Deployment, name: a}, {group: apps, kind: Service, name: b}, {}], timeouts: {idle: 1s}}`, []string{
			`spec.targetRefs[0]: targetRefs must point to a Service (group "" or "core", kind Service), not group "" kind "Deployment"`,
			`spec.targetRefs[1]: targetRefs must point to a Service`, "spec.targetRefs[2].name: required"}},
		{"retry", `{targetRefs: [{name: a}], retry: {attempts: 11, perTryTimeout: 1x, retryOn: [5xx, "500"], retriableStatusCodes: [99], backoff: {baseInterval: "1", maxInterval: 2h0}, budget: {percent: 101, minRetriesPerSecond: -1}}}`, []string{
			"spec.retry.attempts: 11 is out of range, want 0 to 10",
			`spec.retry.perTryTimeout: invalid duration "1x"`,
			`spec.retry.retryOn[1]: "500" is not one of 5xx, gateway-error`,
			"spec.retry.retriableStatusCodes[0]: 99 is out of range, want 100 to 599",
			"spec.retry: retriableStatusCodes needs 'retriable-status-codes' in retryOn",
			`spec.retry.backoff.baseInterval: invalid duration "1"`,
			`spec.retry.backoff.maxInterval: invalid duration "2h0"`,
			"spec.retry.budget.percent: 101 is out of range",
			"spec.retry.budget.minRetriesPerSecond: -1 is out of range, want 0 to 10000"}},
		{"retry cross-field", `{targetRefs: [{name: a}], retry: {attempts: 1, perTryTimeout: 2s, retryOn: [retriable-status-codes], backoff: {baseInterval: 1s, maxInterval: 100ms}}, timeouts: {request: 1s}}`, []string{
			"spec: retry.perTryTimeout must not be longer than timeouts.request",
			"spec.retry: retryOn 'retriable-status-codes' needs retriableStatusCodes",
			"spec.retry.backoff: backoff.maxInterval must not be shorter than backoff.baseInterval"}},
		{"empty timeouts and limits", `{targetRefs: [{name: a}], timeouts: {}, connectionLimits: {}}`, []string{
			"spec.timeouts: timeouts must set request, idle or both",
			"spec.connectionLimits: connectionLimits must set at least one of maxConnections"}},
		{"target names", `{targetRefs: [{name: Cart}, {name: 1cart}, {name: cart, sectionName: HTTP}], timeouts: {idle: 1s}}`, []string{
			`spec.targetRefs[0].name: "Cart" is not a Service name`, `spec.targetRefs[1].name: "1cart" is not a Service name`,
			`spec.targetRefs[2].sectionName: "HTTP" is not a port name`}},
		{"faults", `{targetRefs: [{name: a}], faults: {delay: {percentage: 101}, abort: {percentage: -1, httpStatus: 100, grpcStatus: OK}}}`, []string{
			"spec.faults.delay.fixedDelay: required",
			"spec.faults.delay.percentage: 101 is out of range, want 0 to 100",
			"spec.faults.abort.percentage: -1 is out of range",
			"spec.faults.abort: abort must set exactly one of httpStatus or grpcStatus",
			"spec.faults.abort.httpStatus: 100 is out of range, want 200 to 599",
			`spec.faults.abort.grpcStatus: "OK" is not a gRPC status name`}},
		{"empty faults", `{targetRefs: [{name: a}], faults: {}}`, []string{"spec.faults: faults must set delay, abort or both"}},
		{"empty abort", `{targetRefs: [{name: a}], faults: {abort: {percentage: 1}}}`, []string{"spec.faults.abort: abort must set exactly one"}},
		{"load balancer", `{targetRefs: [{name: a}], loadBalancer: {algorithm: Random}}`, []string{
			`spec.loadBalancer.algorithm: "Random" is not one of P2CPeakEWMA, RoundRobin, LeastRequest`}},
		{"outlier", `{targetRefs: [{name: a}], outlierDetection: {interval: 1y, maxEjectionPercent: 200}}`, []string{
			"spec.outlierDetection: outlierDetection needs consecutive5xxErrors or consecutiveGatewayErrors",
			`spec.outlierDetection.interval: invalid duration "1y"`,
			"spec.outlierDetection.maxEjectionPercent: 200 is out of range"}},
		{"outlier minimums", `{targetRefs: [{name: a}], outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 0}}`, []string{
			"spec.outlierDetection.consecutive5xxErrors: 0 is less than the minimum 1",
			"spec.outlierDetection.consecutiveGatewayErrors: 0 is less than the minimum 1"}},
		{"limits", `{targetRefs: [{name: a}], connectionLimits: {maxConnections: 0, maxPendingRequests: -1, maxRequests: 0}}`, []string{
			"spec.connectionLimits.maxConnections: 0 is less than the minimum 1",
			"spec.connectionLimits.maxPendingRequests: -1 is less than the minimum 0",
			"spec.connectionLimits.maxRequests: 0 is less than the minimum 1"}},
		{"timeouts", `{targetRefs: [{name: a}], timeouts: {request: 5, idle: 1m1}}`, []string{
			`spec.timeouts.request: invalid duration "5"`, `spec.timeouts.idle: invalid duration "1m1"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TrafficPolicy(decode[v1alpha1.TrafficPolicy](t, `{metadata: {name: bad, namespace: shop}, spec: `+tc.spec+`}`))
			wantInvalid(t, err, append([]string{"TrafficPolicy shop/bad: "}, tc.want...)...)
		})
	}
}

func TestAuthorizationPolicy(t *testing.T) {
	got, err := AuthorizationPolicy(decode[v1alpha1.AuthorizationPolicy](t, `
metadata: {name: ap, namespace: shop}
spec:
  targetRefs: [{name: cart}]
  action: Allow
  rules:
  - from:
    - identities: [spiffe://cluster.local/ns/shop/sa/web, "spiffe://cluster.local/ns/ops/*", "spiffe://*"]
    - namespaces: [shop]
    to:
    - {ports: [8080], methods: [GET], paths: [/api/*, /healthz]}
  - to: [{ports: [9090]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &model.AuthorizationPolicy{
		ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "ap"},
		Targets:    []model.PolicyTarget{{Kind: "Service", Name: "cart"}},
		Action:     model.AuthzAllow,
		Rules: []model.AuthorizationRule{
			{
				From: []model.AuthorizationSource{
					{Identities: []string{"spiffe://cluster.local/ns/shop/sa/web", "spiffe://cluster.local/ns/ops/*", "spiffe://*"}},
					{Namespaces: []string{"shop"}},
				},
				To: []model.AuthorizationOperation{{Ports: []int32{8080}, Methods: []string{"GET"}, Paths: []string{"/api/*", "/healthz"}}},
			},
			{To: []model.AuthorizationOperation{{Ports: []int32{9090}}}},
		},
	}
	if d := diff(got, want); d != "" {
		t.Errorf("AuthorizationPolicy (-want +got):\n%s", d)
	}

	// A namespace-wide Deny with no rules is valid (it denies nothing).
	if _, err := AuthorizationPolicy(decode[v1alpha1.AuthorizationPolicy](t, `{metadata: {name: d, namespace: shop}, spec: {action: Deny}}`)); err != nil {
		t.Errorf("Deny without rules: %v", err)
	}

	_, err = AuthorizationPolicy(decode[v1alpha1.AuthorizationPolicy](t, `
metadata: {name: bad, namespace: shop}
spec:
  action: Permit
  rules:
  - {}
  - from: [{}, {identities: ["cluster.local/ns/a", "spiffe://td/a*b", "spiffe://*/x"], namespaces: [Shop, "shop*"]}]
    to: [{ports: [0, 65536], paths: [api, /a*b], methods: [get]}, {}]
`))
	wantInvalid(t, err, "AuthorizationPolicy shop/bad: ",
		`spec.action: "Permit" is not one of Allow, Deny`,
		"spec.rules[0]: a rule needs at least one from or to entry",
		"spec.rules[1].from[0]: from entries need identities or namespaces",
		`spec.rules[1].from[1].identities[0]: "cluster.local/ns/a": identities must be SPIFFE IDs`,
		`spec.rules[1].from[1].identities[1]: "spiffe://td/a*b"`,
		`spec.rules[1].from[1].identities[2]: "spiffe://*/x"`,
		`spec.rules[1].from[1].namespaces[0]: "Shop": namespaces must be namespace names`,
		`spec.rules[1].from[1].namespaces[1]: "shop*"`,
		"spec.rules[1].to[0].ports[0]: 0 is out of range", "spec.rules[1].to[0].ports[1]: 65536 is out of range",
		`spec.rules[1].to[0].paths[0]: "api": paths must start with /`, `spec.rules[1].to[0].paths[1]: "/a*b"`,
		`spec.rules[1].to[0].methods[0]: "get": methods must be upper-case`,
		"spec.rules[1].to[1]: to entries need ports, methods or paths")
	_, err = AuthorizationPolicy(decode[v1alpha1.AuthorizationPolicy](t, `{metadata: {name: bad, namespace: shop}, spec: {}}`))
	wantInvalid(t, err, "spec.action: required: Allow or Deny")
}

func TestGRPCCode(t *testing.T) {
	// The numbers are checked against grpc-go's, not against a copy of ours.
	for name, want := range map[string]codes.Code{
		"CANCELLED": codes.Canceled, "UNKNOWN": codes.Unknown, "INVALID_ARGUMENT": codes.InvalidArgument,
		"DEADLINE_EXCEEDED": codes.DeadlineExceeded, "NOT_FOUND": codes.NotFound, "ALREADY_EXISTS": codes.AlreadyExists,
		"PERMISSION_DENIED": codes.PermissionDenied, "RESOURCE_EXHAUSTED": codes.ResourceExhausted,
		"FAILED_PRECONDITION": codes.FailedPrecondition, "ABORTED": codes.Aborted, "OUT_OF_RANGE": codes.OutOfRange,
		"UNIMPLEMENTED": codes.Unimplemented, "INTERNAL": codes.Internal, "UNAVAILABLE": codes.Unavailable,
		"DATA_LOSS": codes.DataLoss, "UNAUTHENTICATED": codes.Unauthenticated,
	} {
		if got, ok := GRPCCode(name); !ok || got != int32(want) {
			t.Errorf("GRPCCode(%q) = %d, %v; want %d", name, got, ok, want)
		}
	}
	for _, name := range []string{"OK", "unavailable", "Unavailable", ""} {
		if got, ok := GRPCCode(name); ok {
			t.Errorf("GRPCCode(%q) = %d, true; want not found", name, got)
		}
	}
}
