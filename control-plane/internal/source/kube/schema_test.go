package kube

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/control-plane/internal/source/convert"
	kubetest "github.com/weftmesh/weft/tests/kube"
)

// TestSchemaAgreement checks local mode's validation against the real
// thing: each object goes to the apiserver (dry run, with the CRDs of
// the chart installed) and through source/convert, and both must
// accept it or both refuse it. A CRD that gains a rule convert lacks, or
// convert refusing what a cluster accepts, fails here.
func TestSchemaAgreement(t *testing.T) {
	c := kubetest.Require(t, cluster)
	ctx := t.Context()
	if err := c.ApplyChartCRDs(ctx); err != nil {
		t.Fatalf("apply CRDs: %v", err)
	}
	const ns = "schema"
	if _, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(rest.CopyConfig(c.Config))

	const tp, ap, hr, gr, svc, es = "TrafficPolicy", "AuthorizationPolicy", "HTTPRoute", "GRPCRoute", "Service", "EndpointSlice"
	for i, tc := range []struct {
		kind  string
		body  string // everything after metadata
		valid bool
	}{
		{tp, `spec: {targetRefs: [{name: cart}], retry: {attempts: 3}}`, true},
		{tp, `spec: {targetRefs: [{name: cart, sectionName: http}], timeouts: {request: 1m30s, idle: 1h}}`, true},
		{tp, `spec: {targetRefs: [{group: core, kind: Service, name: cart}], faults: {abort: {grpcStatus: UNAVAILABLE, percentage: 100}}}`, true},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, retryOn: [retriable-status-codes], retriableStatusCodes: [503]}}`, true},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, perTryTimeout: 1s, backoff: {baseInterval: 1s, maxInterval: 1s}}, timeouts: {request: 1s}}`, true},
		{tp, `spec: {targetRefs: [{name: c}], outlierDetection: {consecutiveGatewayErrors: 1}, connectionLimits: {maxPendingRequests: 0}, loadBalancer: {}}`, true},
		{tp, `spec: {targetRefs: [{name: c}], faults: {delay: {fixedDelay: 0s, percentage: 0}}}`, true},
		{tp, `spec: {targetRefs: [{name: cart}]}`, false},
		{tp, `spec: {targetRefs: [], timeouts: {idle: 1s}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], timeouts: {request: 1.5s}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], timeouts: {request: 100000s}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], timeouts: {}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 11}}`, false},
		{tp, `spec: {targetRefs: [{kind: Deployment, name: c}], retry: {attempts: 1}}`, false},
		{tp, `spec: {targetRefs: [{group: apps, kind: Service, name: c}], retry: {attempts: 1}}`, false},
		{tp, `spec: {targetRefs: [{name: Cart}], retry: {attempts: 1}}`, false},
		{tp, `spec: {targetRefs: [{name: c, sectionName: HTTP}], retry: {attempts: 1}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], faults: {abort: {httpStatus: 503, grpcStatus: INTERNAL, percentage: 1}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], faults: {abort: {percentage: 1}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], faults: {abort: {grpcStatus: OK, percentage: 1}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], faults: {abort: {httpStatus: 199, percentage: 1}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], faults: {delay: {fixedDelay: 1s, percentage: 101}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], faults: {}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, retriableStatusCodes: [503]}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, retryOn: [retriable-status-codes]}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, retryOn: [teapot]}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, perTryTimeout: 2s}, timeouts: {request: 1s}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, backoff: {baseInterval: 1s, maxInterval: 999ms}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], retry: {attempts: 1, budget: {minRetriesPerSecond: 10001}}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], connectionLimits: {}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], connectionLimits: {maxConnections: 0}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], loadBalancer: {algorithm: Random}}`, false},
		{tp, `spec: {targetRefs: [{name: c}], outlierDetection: {interval: 1s}}`, false},

		{ap, `spec: {action: Deny}`, true},
		{ap, `spec: {targetRefs: [{name: cart}], action: Allow, rules: [{from: [{identities: ["spiffe://*", "spiffe://cluster.local/ns/shop/*"], namespaces: [shop]}], to: [{ports: [8080], methods: [GET, M-SEARCH], paths: [/api/*, /]}]}]}`, true},
		{ap, `spec: {action: Permit}`, false},
		{ap, `spec: {action: Allow, rules: [{}]}`, false},
		{ap, `spec: {action: Allow, rules: [{from: [{}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{to: [{}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{from: [{identities: [cluster.local/ns/a]}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{from: [{identities: ["spiffe://td/a*b"]}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{from: [{namespaces: [Shop]}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{to: [{paths: [api]}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{to: [{paths: ["/a*b"]}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{to: [{methods: [get]}]}]}`, false},
		{ap, `spec: {action: Allow, rules: [{to: [{ports: [0]}]}]}`, false},

		{hr, `spec: {parentRefs: [{group: "", kind: Service, name: cart}], rules: [{backendRefs: [{name: a, port: 80, weight: 0}], timeouts: {request: 0s, backendRequest: 5s}, retry: {attempts: 1, codes: [503], backoff: 10ms}}]}`, true},
		{hr, `spec: {rules: [{matches: [{path: {type: RegularExpression, value: "v[0-9]"}, headers: [{name: x, value: "y"}], queryParams: [{name: q, value: "1"}], method: PATCH}]}]}`, true},
		{hr, `spec: {rules: [{filters: [{type: URLRewrite, urlRewrite: {hostname: example.com}}], backendRefs: [{name: a, port: 1, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}]}]}]}`, true},
		{hr, `spec: {rules: [{timeouts: {request: 1s, backendRequest: 2s}}]}`, false},
		{hr, `spec: {rules: [{timeouts: {request: 1h1m1s1ms1ms}}]}`, false},
		{hr, `spec: {rules: [{retry: {attempts: 0}}]}`, false},
		{hr, `spec: {rules: [{retry: {codes: [600]}}]}`, false},
		{hr, `spec: {rules: [{matches: [{path: {type: Prefix, value: /}}]}]}`, false},
		{hr, `spec: {rules: [{matches: [{path: {type: Exact, value: api}}]}]}`, false},
		{hr, `spec: {rules: [{matches: [{headers: [{name: x, value: y, type: Glob}]}]}]}`, false},
		{hr, `spec: {rules: [{matches: [{method: FETCH}]}]}`, false},
		{hr, `spec: {rules: [{backendRefs: [{name: a}]}]}`, false},
		{hr, `spec: {rules: [{backendRefs: [{name: a, port: 1, weight: 1000001}]}]}`, false},
		{hr, `spec: {rules: [{filters: [{type: RequestHeaderModifier}]}]}`, false},
		{hr, `spec: {rules: [{filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {remove: [a]}}, {type: ResponseHeaderModifier, responseHeaderModifier: {remove: [b]}}]}]}`, false},
		{hr, `spec: {parentRefs: [{name: cart, port: 0}]}`, false},

		{gr, `spec: {parentRefs: [{group: "", kind: Service, name: cart}], rules: [{matches: [{method: {service: shop.Cart}}, {method: {type: RegularExpression, method: "Get.*"}}], backendRefs: [{name: a, port: 9090}]}]}`, true},
		{gr, `spec: {rules: [{matches: [{method: {}}]}]}`, false},
		{gr, `spec: {rules: [{matches: [{method: {type: Prefix, service: a}}]}]}`, false},
		{gr, `spec: {rules: [{backendRefs: [{name: a}]}]}`, false},

		{svc, `spec: {ports: [{name: http, port: 80, targetPort: http, appProtocol: http}, {name: b, port: 81, targetPort: 8081}]}`, true},
		{svc, `spec: {clusterIP: None, ports: [{port: 80}]}`, true},
		{svc, `spec: {ports: [{port: 0}]}`, false},
		{svc, `spec: {ports: [{port: 80, targetPort: 70000}]}`, false},
		{svc, `spec: {clusterIP: 10.96.0.300, ports: [{port: 80}]}`, false},

		{es, `{metadata: {labels: {kubernetes.io/service-name: a}}, addressType: IPv4, ports: [{port: 80}], endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]}`, true},
		{es, `{metadata: {labels: {kubernetes.io/service-name: a}}, addressType: IPv4, endpoints: [{addresses: [not-an-ip]}]}`, false},
		// The apiserver does not range-check EndpointSlice ports, so neither does convert.
		{es, `{metadata: {labels: {kubernetes.io/service-name: a}}, addressType: IPv4, ports: [{port: 70000}]}`, true},
	} {
		name := fmt.Sprintf("%s-%d", tc.kind, i)
		t.Run(name, func(t *testing.T) {
			obj := map[string]any{}
			if err := yaml.Unmarshal([]byte(tc.body), &obj); err != nil {
				t.Fatalf("test object: %v", err)
			}
			gvr := resources[tc.kind]
			obj["apiVersion"], obj["kind"] = gvr.GroupVersion().String(), tc.kind
			if gvr.Group == "" {
				obj["apiVersion"] = "v1"
			}
			md, _ := obj["metadata"].(map[string]any)
			if md == nil {
				md = map[string]any{}
			}
			md["name"], md["namespace"] = "obj", ns
			obj["metadata"] = md
			raw, err := yaml.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}

			_, apiErr := dyn.Resource(gvr).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: obj},
				metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if apiErr != nil && !apierrors.IsInvalid(apiErr) {
				t.Fatalf("apiserver: %v (want success or Invalid)", apiErr)
			}
			convErr := convertRaw(t, tc.kind, raw)
			switch {
			case (apiErr == nil) != tc.valid:
				t.Errorf("apiserver accepted=%v, the test expects %v (err %v)\n%s", apiErr == nil, tc.valid, apiErr, raw)
			case (convErr == nil) != tc.valid:
				t.Errorf("convert accepted=%v, the apiserver %v (convert: %v; apiserver: %v)\n%s",
					convErr == nil, apiErr == nil, convErr, apiErr, raw)
			}
		})
	}
}

// convertRaw decodes an object as source/dir does and converts it.
func convertRaw(t *testing.T, kind string, raw []byte) error {
	t.Helper()
	switch kind {
	case "TrafficPolicy":
		return convertAs(t, raw, convert.TrafficPolicy)
	case "AuthorizationPolicy":
		return convertAs(t, raw, convert.AuthorizationPolicy)
	case "HTTPRoute":
		return convertAs(t, raw, convert.HTTPRoute)
	case "GRPCRoute":
		return convertAs(t, raw, convert.GRPCRoute)
	case "Service":
		return convertAs(t, raw, convert.Service)
	case "EndpointSlice":
		return convertAs(t, raw, convert.EndpointSlice)
	}
	t.Fatalf("no converter for %s", kind)
	return nil
}

func convertAs[T, M any](t *testing.T, raw []byte, conv func(*T) (*M, error)) error {
	t.Helper()
	var obj T
	if err := yaml.UnmarshalStrict(raw, &obj); err != nil {
		t.Fatalf("decode %T: %v", obj, err)
	}
	_, err := conv(&obj)
	return err
}
