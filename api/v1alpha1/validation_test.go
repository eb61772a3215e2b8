package v1alpha1_test

// Integration tests of the CRD schemas in charts/weft/crds: they are
// installed into a real kube-apiserver, and objects built from the Go types
// are created through a dynamic client. Valid objects must be stored;
// invalid ones must be refused with the message written in the markers of
// this package, so `kubectl apply` tells a person what to fix.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/tests/kube"
)

// crdDir is the chart's CRD directory, relative to this package.
const crdDir = "../../charts/weft/crds"

var (
	cluster *kube.Cluster

	installOnce sync.Once
	installErr  error

	scheme = newScheme()

	trafficPolicies       = v1alpha1.GroupVersion.WithResource("trafficpolicies")
	authorizationPolicies = v1alpha1.GroupVersion.WithResource("authorizationpolicies")
	httpRoutes            = gwapiv1.SchemeGroupVersion.WithResource("httproutes")
	grpcRoutes            = gwapiv1.SchemeGroupVersion.WithResource("grpcroutes")
)

func TestMain(m *testing.M) { os.Exit(kube.Main(m, &cluster)) }

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{v1alpha1.AddToScheme, gwapiv1.Install} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// env is a cluster with the chart's CRDs installed and a namespace of the
// test's own.
type env struct {
	cluster *kube.Cluster
	dyn     dynamic.Interface
	ns      string
}

// setup installs the CRDs once per package run and creates namespace ns.
func setup(t *testing.T, ns string) *env {
	t.Helper()
	c := kube.Require(t, cluster)
	installOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		installErr = c.ApplyChartCRDs(ctx)
	})
	if installErr != nil {
		t.Fatalf("install the chart's CRDs: %v", installErr)
	}
	dyn, err := dynamic.NewForConfig(rest.CopyConfig(c.Config))
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	_, err = c.Clientset().CoreV1().Namespaces().Create(t.Context(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	return &env{cluster: c, dyn: dyn, ns: ns}
}

// create stores obj (a typed object of v1alpha1 or Gateway API v1) in the
// env's namespace, with strict field validation so a misspelt field is an
// error rather than silently dropped.
func (e *env) create(ctx context.Context, gvr schema.GroupVersionResource, obj runtime.Object) (*unstructured.Unstructured, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return e.createUnstructured(ctx, gvr, u)
}

func (e *env) createUnstructured(ctx context.Context, gvr schema.GroupVersionResource, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	u.SetNamespace(e.ns)
	return e.dyn.Resource(gvr).Namespace(e.ns).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
}

// toUnstructured converts a typed object, setting apiVersion and kind from
// the scheme and dropping status (the status subresource ignores it on
// create anyway).
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	gvks, _, err := scheme.ObjectKinds(obj)
	if err != nil {
		return nil, fmt.Errorf("kind of %T: %w", obj, err)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", obj, err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvks[0])
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

func ptr[T any](v T) *T { return &v }

// objectName names the i-th object of a table.
func objectName(prefix string, i int) string { return fmt.Sprintf("%s-%02d", prefix, i) }

// reviews is the usual target of the policies below.
var reviews = []v1alpha1.ServiceTargetRef{{Name: "reviews"}}

func trafficPolicy(name string, spec v1alpha1.TrafficPolicySpec) *v1alpha1.TrafficPolicy {
	return &v1alpha1.TrafficPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func authorizationPolicy(name string, spec v1alpha1.AuthorizationPolicySpec) *v1alpha1.AuthorizationPolicy {
	return &v1alpha1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func dur(s string) *v1alpha1.Duration { return ptr(v1alpha1.Duration(s)) }
func pct(p int32) *v1alpha1.Percent   { return ptr(v1alpha1.Percent(p)) }

func TestTrafficPolicyAccepted(t *testing.T) {
	e := setup(t, "tp-valid")
	cases := []struct {
		name string
		spec v1alpha1.TrafficPolicySpec
	}{
		{"retries with budget and backoff", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{
				Attempts:      3,
				PerTryTimeout: dur("500ms"),
				RetryOn:       []v1alpha1.RetryOn{"connect-failure", "reset", "gateway-error"},
				Backoff:       &v1alpha1.RetryBackoff{BaseInterval: dur("25ms"), MaxInterval: dur("250ms")},
				Budget:        &v1alpha1.RetryBudget{Percent: pct(20), MinRetriesPerSecond: ptr(int32(10))},
			},
			Timeouts: &v1alpha1.TimeoutPolicy{Request: dur("2s")},
		}},
		{"attempts 0 and 10 are the bounds (0)", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews, Retry: &v1alpha1.RetryPolicy{Attempts: 0},
		}},
		{"attempts 0 and 10 are the bounds (10)", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews, Retry: &v1alpha1.RetryPolicy{Attempts: 10},
		}},
		{"retriable status codes with retriable-status-codes", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{
				Attempts:             2,
				RetryOn:              []v1alpha1.RetryOn{"retriable-status-codes", "connect-failure"},
				RetriableStatusCodes: []int32{503, 429},
			},
		}},
		{"gRPC retry conditions", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Retry:      &v1alpha1.RetryPolicy{Attempts: 2, RetryOn: []v1alpha1.RetryOn{"unavailable", "resource-exhausted", "cancelled", "deadline-exceeded", "internal"}},
		}},
		{"perTryTimeout equal to the request timeout", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Retry:      &v1alpha1.RetryPolicy{Attempts: 1, PerTryTimeout: dur("2s")},
			Timeouts:   &v1alpha1.TimeoutPolicy{Request: dur("2000ms")},
		}},
		{"four-part duration", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews, Timeouts: &v1alpha1.TimeoutPolicy{Idle: dur("1h2m3s4ms")},
		}},
		{"fault delay and HTTP abort", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{
				Delay: &v1alpha1.FaultDelay{FixedDelay: "3s", Percentage: 10},
				Abort: &v1alpha1.FaultAbort{HTTPStatus: ptr(int32(503)), Percentage: 5},
			},
		}},
		{"fault gRPC abort at 100 percent", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Faults:     &v1alpha1.FaultPolicy{Abort: &v1alpha1.FaultAbort{GRPCStatus: ptr(v1alpha1.GRPCStatus("UNAVAILABLE")), Percentage: 100}},
		}},
		{"fault delay at 0 percent", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			Faults:     &v1alpha1.FaultPolicy{Delay: &v1alpha1.FaultDelay{FixedDelay: "100ms", Percentage: 0}},
		}},
		{"load balancer on a named port, group core", v1alpha1.TrafficPolicySpec{
			TargetRefs:   []v1alpha1.ServiceTargetRef{{Group: "core", Kind: "Service", Name: "reviews", SectionName: "http"}},
			LoadBalancer: &v1alpha1.LoadBalancerPolicy{Algorithm: v1alpha1.RoundRobin},
		}},
		{"several targets", v1alpha1.TrafficPolicySpec{
			TargetRefs:   []v1alpha1.ServiceTargetRef{{Name: "reviews"}, {Name: "ratings", Kind: "Service"}},
			LoadBalancer: &v1alpha1.LoadBalancerPolicy{Algorithm: v1alpha1.LeastRequest},
		}},
		{"outlier detection", v1alpha1.TrafficPolicySpec{
			TargetRefs: reviews,
			OutlierDetection: &v1alpha1.OutlierDetection{
				ConsecutiveGatewayErrors: ptr(int32(5)), Interval: dur("10s"),
				BaseEjectionTime: dur("30s"), MaxEjectionPercent: pct(50),
			},
		}},
		{"connection limits", v1alpha1.TrafficPolicySpec{
			TargetRefs:       reviews,
			ConnectionLimits: &v1alpha1.ConnectionLimits{MaxConnections: ptr(int32(100)), MaxPendingRequests: ptr(int32(0))},
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.create(t.Context(), trafficPolicies, trafficPolicy(objectName("tp", i), tc.spec)); err != nil {
				t.Fatalf("create: got error %v, want the object accepted", err)
			}
		})
	}
}

// invalidCase is an object the apiserver must refuse, and the substrings
// its error must contain (field path, then our message).
type invalidCase struct {
	name string
	obj  runtime.Object
	want []string
}

func TestTrafficPolicyRejected(t *testing.T) {
	e := setup(t, "tp-invalid")
	seventeen := make([]v1alpha1.ServiceTargetRef, 17)
	for i := range seventeen {
		seventeen[i] = v1alpha1.ServiceTargetRef{Name: fmt.Sprintf("svc-%d", i)}
	}
	lb := &v1alpha1.LoadBalancerPolicy{Algorithm: v1alpha1.P2CPeakEWMA}
	tp := func(spec v1alpha1.TrafficPolicySpec) runtime.Object { return trafficPolicy("invalid", spec) }
	cases := []invalidCase{
		{"percentage 101", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Delay: &v1alpha1.FaultDelay{FixedDelay: "1s", Percentage: 101}}}),
			[]string{"spec.faults.delay.percentage", "should be less than or equal to 100"}},
		{"negative percentage", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Abort: &v1alpha1.FaultAbort{HTTPStatus: ptr(int32(500)), Percentage: -1}}}),
			[]string{"spec.faults.abort.percentage", "should be greater than or equal to 0"}},
		{"abort with both httpStatus and grpcStatus", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Abort: &v1alpha1.FaultAbort{HTTPStatus: ptr(int32(503)), GRPCStatus: ptr(v1alpha1.GRPCStatus("UNAVAILABLE")), Percentage: 10}}}),
			[]string{"spec.faults.abort", "abort must set exactly one of httpStatus or grpcStatus"}},
		{"abort with neither httpStatus nor grpcStatus", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Abort: &v1alpha1.FaultAbort{Percentage: 10}}}),
			[]string{"spec.faults.abort", "abort must set exactly one of httpStatus or grpcStatus"}},
		{"abort with HTTP status 600", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Abort: &v1alpha1.FaultAbort{HTTPStatus: ptr(int32(600)), Percentage: 10}}}),
			[]string{"spec.faults.abort.httpStatus", "should be less than or equal to 599"}},
		{"abort with an unknown gRPC status", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Abort: &v1alpha1.FaultAbort{GRPCStatus: ptr(v1alpha1.GRPCStatus("Unavailable")), Percentage: 10}}}),
			[]string{"spec.faults.abort.grpcStatus", `Unsupported value: "Unavailable"`, `"UNAVAILABLE"`}},
		{"faults with neither delay nor abort", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{}}),
			[]string{"spec.faults", "faults must set delay, abort or both"}},
		{"targetRef to a Deployment", tp(v1alpha1.TrafficPolicySpec{
			TargetRefs:   []v1alpha1.ServiceTargetRef{{Group: "apps", Kind: "Deployment", Name: "reviews"}},
			LoadBalancer: lb}),
			[]string{"spec.targetRefs[0]", `targetRefs must point to a Service (group "" or "core", kind Service)`}},
		{"targetRef to a Service of another group", tp(v1alpha1.TrafficPolicySpec{
			TargetRefs:   []v1alpha1.ServiceTargetRef{{Name: "reviews"}, {Group: "networking.k8s.io", Kind: "Service", Name: "ratings"}},
			LoadBalancer: lb}),
			[]string{"spec.targetRefs[1]", `targetRefs must point to a Service (group "" or "core", kind Service)`}},
		{"targetRef name that cannot be a Service", tp(v1alpha1.TrafficPolicySpec{
			TargetRefs:   []v1alpha1.ServiceTargetRef{{Name: "Reviews_v1"}},
			LoadBalancer: lb}),
			[]string{"spec.targetRefs[0].name", "should match"}},
		{"no targetRefs", tp(v1alpha1.TrafficPolicySpec{LoadBalancer: lb}),
			[]string{"spec.targetRefs", "Required value"}},
		{"17 targetRefs", tp(v1alpha1.TrafficPolicySpec{TargetRefs: seventeen, LoadBalancer: lb}),
			[]string{"spec.targetRefs", "must have at most 16 items"}},
		{"only targetRefs", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews}),
			[]string{"spec", "a TrafficPolicy must set at least one of retry, timeouts, faults, loadBalancer, outlierDetection or connectionLimits"}},
		{"duration in words", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, PerTryTimeout: dur("5 seconds")}}),
			[]string{"spec.retry.perTryTimeout", "must be a duration such as 500ms, 10s or 1m30s"}},
		{"fractional duration", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Timeouts: &v1alpha1.TimeoutPolicy{Request: dur("1.5s")}}),
			[]string{"spec.timeouts.request", "must be a duration such as 500ms, 10s or 1m30s"}},
		{"duration in days", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Faults: &v1alpha1.FaultPolicy{Delay: &v1alpha1.FaultDelay{FixedDelay: "1d", Percentage: 1}}}),
			[]string{"spec.faults.delay.fixedDelay", "must be a duration such as 500ms, 10s or 1m30s"}},
		{"attempts -1", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: -1}}),
			[]string{"spec.retry.attempts", "should be greater than or equal to 0"}},
		{"attempts 11", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 11}}),
			[]string{"spec.retry.attempts", "should be less than or equal to 10"}},
		{"retriableStatusCodes without retriable-status-codes", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, RetryOn: []v1alpha1.RetryOn{"5xx"}, RetriableStatusCodes: []int32{503}}}),
			[]string{"spec.retry", "retriableStatusCodes needs 'retriable-status-codes' in retryOn"}},
		{"retriableStatusCodes without retryOn", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, RetriableStatusCodes: []int32{503}}}),
			[]string{"spec.retry", "retriableStatusCodes needs 'retriable-status-codes' in retryOn"}},
		{"retriable-status-codes without retriableStatusCodes", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, RetryOn: []v1alpha1.RetryOn{"retriable-status-codes"}}}),
			[]string{"spec.retry", "retryOn 'retriable-status-codes' needs retriableStatusCodes"}},
		{"unknown retryOn condition", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, RetryOn: []v1alpha1.RetryOn{"5xx", "timeout"}}}),
			[]string{"spec.retry.retryOn[1]", `Unsupported value: "timeout"`}},
		{"duplicate retryOn condition", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, RetryOn: []v1alpha1.RetryOn{"5xx", "5xx"}}}),
			[]string{"spec.retry.retryOn[1]", "Duplicate value"}},
		{"retriable status code 99", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, RetryOn: []v1alpha1.RetryOn{"retriable-status-codes"}, RetriableStatusCodes: []int32{99}}}),
			[]string{"spec.retry.retriableStatusCodes[0]", "should be greater than or equal to 100"}},
		{"perTryTimeout longer than the request timeout", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry:    &v1alpha1.RetryPolicy{Attempts: 2, PerTryTimeout: dur("5s")},
			Timeouts: &v1alpha1.TimeoutPolicy{Request: dur("2s")}}),
			[]string{"spec", "retry.perTryTimeout must not be longer than timeouts.request"}},
		{"backoff maxInterval below baseInterval", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, Backoff: &v1alpha1.RetryBackoff{BaseInterval: dur("1s"), MaxInterval: dur("100ms")}}}),
			[]string{"spec.retry.backoff", "backoff.maxInterval must not be shorter than backoff.baseInterval"}},
		{"budget percent 150", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Retry: &v1alpha1.RetryPolicy{Attempts: 2, Budget: &v1alpha1.RetryBudget{Percent: pct(150)}}}),
			[]string{"spec.retry.budget.percent", "should be less than or equal to 100"}},
		{"timeouts with nothing set", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			Timeouts: &v1alpha1.TimeoutPolicy{}}),
			[]string{"spec.timeouts", "timeouts must set request, idle or both"}},
		{"unknown load balancer", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			LoadBalancer: &v1alpha1.LoadBalancerPolicy{Algorithm: "Random"}}),
			[]string{"spec.loadBalancer.algorithm", `Unsupported value: "Random"`, `"P2CPeakEWMA"`}},
		{"outlier detection with no trigger", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			OutlierDetection: &v1alpha1.OutlierDetection{Interval: dur("10s")}}),
			[]string{"spec.outlierDetection", "outlierDetection needs consecutive5xxErrors or consecutiveGatewayErrors"}},
		{"outlier detection after 0 errors", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			OutlierDetection: &v1alpha1.OutlierDetection{Consecutive5xxErrors: ptr(int32(0))}}),
			[]string{"spec.outlierDetection.consecutive5xxErrors", "should be greater than or equal to 1"}},
		{"connection limits with nothing set", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			ConnectionLimits: &v1alpha1.ConnectionLimits{}}),
			[]string{"spec.connectionLimits", "connectionLimits must set at least one of maxConnections, maxPendingRequests or maxRequests"}},
		{"connection limit of 0 connections", tp(v1alpha1.TrafficPolicySpec{TargetRefs: reviews,
			ConnectionLimits: &v1alpha1.ConnectionLimits{MaxConnections: ptr(int32(0))}}),
			[]string{"spec.connectionLimits.maxConnections", "should be greater than or equal to 1"}},
	}
	runInvalid(t, e, trafficPolicies, cases)
}

func TestAuthorizationPolicyAccepted(t *testing.T) {
	e := setup(t, "authz-valid")
	frontend := "spiffe://cluster.local/ns/shop/sa/frontend"
	cases := []struct {
		name string
		spec v1alpha1.AuthorizationPolicySpec
	}{
		{"one service account may GET /api/*", v1alpha1.AuthorizationPolicySpec{
			TargetRefs: []v1alpha1.ServiceTargetRef{{Name: "catalog"}},
			Action:     v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{
				From: []v1alpha1.AuthorizationSource{{Identities: []string{frontend}}},
				To:   []v1alpha1.AuthorizationOperation{{Methods: []string{"GET"}, Paths: []string{"/api/*"}}},
			}},
		}},
		{"deny a namespace, every pod of this namespace", v1alpha1.AuthorizationPolicySpec{
			Action: v1alpha1.ActionDeny,
			Rules:  []v1alpha1.AuthorizationRule{{From: []v1alpha1.AuthorizationSource{{Namespaces: []string{"legacy"}}}}},
		}},
		{"allow with no rules allows nothing", v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow}},
		{"wildcards: any mesh identity, a whole namespace", v1alpha1.AuthorizationPolicySpec{
			Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{
				{From: []v1alpha1.AuthorizationSource{{Identities: []string{"spiffe://*"}}}, To: []v1alpha1.AuthorizationOperation{{Ports: []int32{8080}}}},
				{From: []v1alpha1.AuthorizationSource{{Identities: []string{"spiffe://cluster.local/ns/shop/*"}, Namespaces: []string{"shop"}}}},
			},
		}},
		{"operations only", v1alpha1.AuthorizationPolicySpec{
			Action: v1alpha1.ActionDeny,
			Rules: []v1alpha1.AuthorizationRule{{To: []v1alpha1.AuthorizationOperation{
				{Methods: []string{"DELETE", "VERSION-CONTROL"}, Paths: []string{"/admin", "/internal/*"}},
				{Ports: []int32{1, 65535}},
			}}},
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.create(t.Context(), authorizationPolicies, authorizationPolicy(objectName("authz", i), tc.spec)); err != nil {
				t.Fatalf("create: got error %v, want the object accepted", err)
			}
		})
	}
}

func TestAuthorizationPolicyRejected(t *testing.T) {
	e := setup(t, "authz-invalid")
	ap := func(spec v1alpha1.AuthorizationPolicySpec) runtime.Object {
		return authorizationPolicy("invalid", spec)
	}
	from := func(ids ...string) []v1alpha1.AuthorizationSource {
		return []v1alpha1.AuthorizationSource{{Identities: ids}}
	}
	to := func(op v1alpha1.AuthorizationOperation) []v1alpha1.AuthorizationRule {
		return []v1alpha1.AuthorizationRule{{To: []v1alpha1.AuthorizationOperation{op}}}
	}
	cases := []invalidCase{
		{"rule with neither from nor to", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{}}}),
			[]string{"spec.rules[0]", "a rule needs at least one from or to entry"}},
		{"bad action", ap(v1alpha1.AuthorizationPolicySpec{Action: "Maybe"}),
			[]string{"spec.action", `Unsupported value: "Maybe"`, `"Allow", "Deny"`}},
		{"lower-case action", ap(v1alpha1.AuthorizationPolicySpec{Action: "allow"}),
			[]string{"spec.action", `Unsupported value: "allow"`}},
		{"no action", ap(v1alpha1.AuthorizationPolicySpec{}),
			[]string{"spec.action", `Unsupported value: ""`}},
		{"empty from entry", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{From: []v1alpha1.AuthorizationSource{{}}}}}),
			[]string{"spec.rules[0].from[0]", "from entries need identities or namespaces"}},
		{"empty to entry", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionDeny,
			Rules: to(v1alpha1.AuthorizationOperation{})}),
			[]string{"spec.rules[0].to[0]", "to entries need ports, methods or paths"}},
		{"identity that is not a SPIFFE ID", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{From: from("cluster.local/ns/shop/sa/frontend")}}}),
			[]string{"spec.rules[0].from[0].identities[0]", "identities must be SPIFFE IDs such as spiffe://cluster.local/ns/shop/sa/frontend, with a * only at the end"}},
		{"identity with a wildcard inside", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{From: from("spiffe://cluster.local/ns/*/sa/frontend")}}}),
			[]string{"spec.rules[0].from[0].identities[0]", "identities must be SPIFFE IDs such as spiffe://cluster.local/ns/shop/sa/frontend, with a * only at the end"}},
		{"namespace with upper case", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{From: []v1alpha1.AuthorizationSource{{Namespaces: []string{"Shop"}}}}}}),
			[]string{"spec.rules[0].from[0].namespaces[0]", "namespaces must be namespace names: lower case, no wildcards"}},
		{"relative path", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: to(v1alpha1.AuthorizationOperation{Paths: []string{"api/*"}})}),
			[]string{"spec.rules[0].to[0].paths[0]", "paths must start with / and may end with * (a prefix such as /api/*); a * is allowed only at the end"}},
		{"path with a wildcard inside", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: to(v1alpha1.AuthorizationOperation{Paths: []string{"/api/*/items"}})}),
			[]string{"spec.rules[0].to[0].paths[0]", "paths must start with / and may end with * (a prefix such as /api/*); a * is allowed only at the end"}},
		{"lower-case method", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: to(v1alpha1.AuthorizationOperation{Methods: []string{"get"}})}),
			[]string{"spec.rules[0].to[0].methods[0]", "methods must be upper-case HTTP methods such as GET or POST"}},
		{"wildcard namespace", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: []v1alpha1.AuthorizationRule{{From: []v1alpha1.AuthorizationSource{{Namespaces: []string{"*"}}}}}}),
			[]string{"spec.rules[0].from[0].namespaces[0]", "namespaces must be namespace names: lower case, no wildcards"}},
		{"33 rules", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: slices.Repeat(to(v1alpha1.AuthorizationOperation{Ports: []int32{80}}), 33)}),
			[]string{"spec.rules", "must have at most 32 items"}},
		{"port 0", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			Rules: to(v1alpha1.AuthorizationOperation{Ports: []int32{0}})}),
			[]string{"spec.rules[0].to[0].ports[0]", "should be greater than or equal to 1"}},
		{"targetRef to a Deployment", ap(v1alpha1.AuthorizationPolicySpec{Action: v1alpha1.ActionAllow,
			TargetRefs: []v1alpha1.ServiceTargetRef{{Group: "apps", Kind: "Deployment", Name: "catalog"}}}),
			[]string{"spec.targetRefs[0]", `targetRefs must point to a Service (group "" or "core", kind Service)`}},
	}
	runInvalid(t, e, authorizationPolicies, cases)
}

// runInvalid creates each case's object and checks that the apiserver
// refuses it as Invalid with every wanted substring in the message.
func runInvalid(t *testing.T, e *env, gvr schema.GroupVersionResource, cases []invalidCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.create(t.Context(), gvr, tc.obj)
			if err == nil {
				t.Fatalf("create: got the object accepted (%s), want it rejected with %q", describe(got), tc.want)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("create: got error %v (reason %q), want reason Invalid", err, apierrors.ReasonForError(err))
			}
			t.Logf("rejected as expected: %v", err) // what kubectl apply would print
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error message lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// firstMap returns the first element of list if it is an object.
func firstMap(list []any) (map[string]any, bool) {
	if len(list) == 0 {
		return nil, false
	}
	m, ok := list[0].(map[string]any)
	return m, ok
}

func describe(u *unstructured.Unstructured) string {
	if u == nil {
		return "nil"
	}
	b, err := u.MarshalJSON()
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// TestDefaults checks what the schema fills in, so Go clients may leave
// targetRefs' group and kind, and a retry budget's fields, unset.
func TestDefaults(t *testing.T) {
	e := setup(t, "defaults")
	in := trafficPolicy("defaults", v1alpha1.TrafficPolicySpec{
		TargetRefs: reviews,
		Retry:      &v1alpha1.RetryPolicy{Attempts: 2, Budget: &v1alpha1.RetryBudget{}},
	})
	u, err := e.create(t.Context(), trafficPolicies, in)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var got v1alpha1.TrafficPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &got); err != nil {
		t.Fatalf("convert: %v", err)
	}
	if n := len(got.Spec.TargetRefs); n != 1 {
		t.Fatalf("targetRefs: got %d, want 1", n)
	}
	wantRef := v1alpha1.ServiceTargetRef{Group: "", Kind: "Service", Name: "reviews"}
	if ref := got.Spec.TargetRefs[0]; ref != wantRef {
		t.Errorf("targetRefs[0]: got %+v, want %+v", ref, wantRef)
	}
	b := got.Spec.Retry.Budget
	if b.Percent == nil || *b.Percent != 20 {
		t.Errorf("retry.budget.percent: got %v, want 20", b.Percent)
	}
	if b.MinRetriesPerSecond == nil || *b.MinRetriesPerSecond != 10 {
		t.Errorf("retry.budget.minRetriesPerSecond: got %v, want 10", b.MinRetriesPerSecond)
	}

	u, err = e.createUnstructured(t.Context(), trafficPolicies, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "TrafficPolicy",
		"metadata": map[string]any{"name": "lb-default"},
		"spec": map[string]any{
			"targetRefs":   []any{map[string]any{"name": "reviews"}},
			"loadBalancer": map[string]any{},
		},
	}})
	if err != nil {
		t.Fatalf("create with loadBalancer {}: %v", err)
	}
	alg, _, _ := unstructured.NestedString(u.Object, "spec", "loadBalancer", "algorithm")
	if alg != string(v1alpha1.P2CPeakEWMA) {
		t.Errorf("loadBalancer.algorithm: got %q, want %q", alg, v1alpha1.P2CPeakEWMA)
	}
}

// TestGatewayAPIRoutes proves the experimental-channel HTTPRoute and
// GRPCRoute CRDs are installed: a mesh (GAMMA) route with a Service parent
// and a retry block is accepted, and the retry block is stored (the
// standard channel would prune it silently).
func TestGatewayAPIRoutes(t *testing.T) {
	e := setup(t, "routes")
	ctx := t.Context()
	crds, err := apiextensionsclient.NewForConfig(rest.CopyConfig(e.cluster.Config))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io"} {
		crd, err := crds.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get CRD %s: %v", name, err)
		}
		for k, want := range map[string]string{
			"gateway.networking.k8s.io/channel":        "experimental",
			"gateway.networking.k8s.io/bundle-version": "v1.6.3",
		} {
			if got := crd.Annotations[k]; got != want {
				t.Errorf("CRD %s annotation %s: got %q, want %q", name, k, got, want)
			}
		}
	}

	serviceParent := gwapiv1.ParentReference{
		Group: ptr(gwapiv1.Group("")), Kind: ptr(gwapiv1.Kind("Service")),
		Name: "reviews", Port: ptr(gwapiv1.PortNumber(9080)),
	}
	backend := func(name string, weight int32) gwapiv1.HTTPBackendRef {
		return gwapiv1.HTTPBackendRef{BackendRef: gwapiv1.BackendRef{
			BackendObjectReference: gwapiv1.BackendObjectReference{Name: gwapiv1.ObjectName(name), Port: ptr(gwapiv1.PortNumber(9080))},
			Weight:                 ptr(weight),
		}}
	}
	route := &gwapiv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-canary"},
		Spec: gwapiv1.HTTPRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{serviceParent}},
			Rules: []gwapiv1.HTTPRouteRule{{
				BackendRefs: []gwapiv1.HTTPBackendRef{backend("reviews-v1", 90), backend("reviews-v2", 10)},
				Timeouts:    &gwapiv1.HTTPRouteTimeouts{Request: ptr(gwapiv1.Duration("10s"))},
				Retry: &gwapiv1.HTTPRouteRetry{
					Codes:    []gwapiv1.HTTPRouteRetryStatusCode{503},
					Attempts: ptr(2),
					Backoff:  ptr(gwapiv1.Duration("100ms")),
				},
			}},
		},
	}
	u, err := e.create(ctx, httpRoutes, route)
	if err != nil {
		t.Fatalf("create HTTPRoute: got %v, want it accepted", err)
	}
	var (
		attempts int64
		found    bool
	)
	rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if rule, ok := firstMap(rules); ok && err == nil {
		attempts, found, err = unstructured.NestedInt64(rule, "retry", "attempts")
	}
	if err != nil || !found || attempts != 2 {
		t.Errorf("stored HTTPRoute spec.rules[0].retry.attempts: got %d (found %v, err %v), want 2: is the experimental channel installed?\n%s",
			attempts, found, err, describe(u))
	}

	grpc := &gwapiv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings"},
		Spec: gwapiv1.GRPCRouteSpec{
			CommonRouteSpec: gwapiv1.CommonRouteSpec{ParentRefs: []gwapiv1.ParentReference{{
				Group: ptr(gwapiv1.Group("core")), Kind: ptr(gwapiv1.Kind("Service")), Name: "ratings",
			}}},
			Rules: []gwapiv1.GRPCRouteRule{{
				Matches: []gwapiv1.GRPCRouteMatch{{Method: &gwapiv1.GRPCMethodMatch{Service: ptr("ratings.v1.Ratings")}}},
				BackendRefs: []gwapiv1.GRPCBackendRef{{BackendRef: gwapiv1.BackendRef{
					BackendObjectReference: gwapiv1.BackendObjectReference{Name: "ratings-v2", Port: ptr(gwapiv1.PortNumber(50051))},
				}}},
			}},
		},
	}
	if _, err := e.create(ctx, grpcRoutes, grpc); err != nil {
		t.Fatalf("create GRPCRoute: got %v, want it accepted", err)
	}
}
