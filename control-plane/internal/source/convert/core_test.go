package convert

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

func TestNamespaceAndPod(t *testing.T) {
	ns := decode[corev1.Namespace](t, `
metadata:
  name: shop
  labels: {team: a}
  annotations: {weftmesh.io/mesh: enabled, kubectl.kubernetes.io/last-applied-configuration: "{}"}
`)
	want := &model.Namespace{Name: "shop", Labels: map[string]string{"team": "a"},
		Annotations: map[string]string{"weftmesh.io/mesh": "enabled"}}
	if d := diff(Namespace(ns), want); d != "" {
		t.Errorf("Namespace (-want +got):\n%s", d)
	}
	pod := decode[corev1.Pod](t, `
metadata: {name: cart-1, namespace: shop, uid: u1, labels: {app: cart}}
spec: {nodeName: node-a, serviceAccountName: cart, hostNetwork: true, containers: [{name: app}]}
status: {podIP: 10.1.0.2}
`)
	wantPod := &model.Pod{Namespace: "shop", Name: "cart-1", UID: "u1", NodeName: "node-a", ServiceAccount: "cart",
		IP: "10.1.0.2", HostNetwork: true, Labels: map[string]string{"app": "cart"}, Workload: "cart"}
	got := Pod(pod)
	if d := diff(got, wantPod); d != "" {
		t.Errorf("Pod (-want +got):\n%s", d)
	}
	// The model does not alias the API object's maps.
	pod.Labels["app"] = "changed"
	if got.Labels["app"] != "cart" {
		t.Errorf("model pod labels follow a change of the API object: %v", got.Labels)
	}
}

func TestPodWorkload(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"Deployment's ReplicaSet", `
metadata:
  name: web-7d9f8b6c5-x2k4p
  labels: {app: shop, pod-template-hash: 7d9f8b6c5}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d9f8b6c5, uid: r1, controller: true}]
`, "web"},
		{"ReplicaSet without pod-template-hash", `
metadata:
  name: web-x2k4p
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web, uid: r1, controller: true}]
`, "web"},
		{"StatefulSet", `
metadata:
  name: db-0
  labels: {app: shop}
  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s1, controller: true}]
`, "db"},
		{"only the controller owner counts", `
metadata:
  name: agent-abcde
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: cfg, uid: c1}
  - {apiVersion: apps/v1, kind: DaemonSet, name: agent, uid: d1, controller: true}
`, "agent"},
		{"no controller owner: app.kubernetes.io/name", `
metadata:
  name: solo
  labels: {app.kubernetes.io/name: cart, app: c}
  ownerReferences: [{apiVersion: v1, kind: ConfigMap, name: cfg, uid: c1, controller: false}]
`, "cart"},
		{"no owner: app", `{metadata: {name: solo, labels: {app: c}}}`, "c"},
		{"no owner, no labels: pod name", `{metadata: {name: solo}}`, "solo"},
	} {
		if got := Pod(decode[corev1.Pod](t, tc.in)).Workload; got != tc.want {
			t.Errorf("%s: Workload %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestService(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		in   string
		want *model.Service
	}{
		{
			name: "every field",
			in: `
metadata: {name: cart, namespace: shop, uid: s1, generation: 2, creationTimestamp: "2025-01-02T03:04:05Z", labels: {a: b}}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10, "fd00::10"]
  selector: {app: cart}
  ports:
  - {name: http, port: 80, targetPort: 8080, appProtocol: http}
  - {name: grpc, port: 9090, targetPort: grpc-port, protocol: TCP, appProtocol: kubernetes.io/h2c}
  - {name: dns, port: 53, protocol: UDP}
`,
			want: &model.Service{
				ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "cart", UID: "s1", Generation: 2, Created: created,
					Labels: map[string]string{"a": "b"}},
				ClusterIPs: []string{"10.96.0.10", "fd00::10"},
				Type:       "NodePort",
				Selector:   map[string]string{"app": "cart"},
				Ports: []model.ServicePort{
					{Name: "http", Port: 80, Protocol: "TCP", AppProtocol: "http", TargetPort: 8080},
					{Name: "grpc", Port: 9090, Protocol: "TCP", AppProtocol: "kubernetes.io/h2c", TargetPortName: "grpc-port"},
					{Name: "dns", Port: 53, Protocol: "UDP", TargetPort: 53},
				},
			},
		},
		{
			name: "defaults: type ClusterIP, clusterIP without clusterIPs",
			in:   `{metadata: {name: a, namespace: ns1}, spec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}}`,
			want: &model.Service{ObjectMeta: model.ObjectMeta{Namespace: "ns1", Name: "a"}, Type: "ClusterIP",
				ClusterIPs: []string{"10.96.0.11"}, Ports: []model.ServicePort{{Port: 80, Protocol: "TCP", TargetPort: 80}}},
		},
		{
			name: "headless",
			in:   `{metadata: {name: a, namespace: ns1}, spec: {clusterIP: None, clusterIPs: [None]}}`,
			want: &model.Service{ObjectMeta: model.ObjectMeta{Namespace: "ns1", Name: "a"}, Type: "ClusterIP"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Service(decode[corev1.Service](t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(got, tc.want); d != "" {
				t.Errorf("Service (-want +got):\n%s", d)
			}
		})
	}
	_, err := Service(decode[corev1.Service](t, `{metadata: {name: a, namespace: ns1}, spec: {clusterIP: "10.96.0.300", ports: [{port: 0}, {port: 80, targetPort: 70000}]}}`))
	wantInvalid(t, err, "Service ns1/a: ", `spec.clusterIPs[0]: "10.96.0.300" is not an IP address`,
		"spec.ports[0].port: 0 is out of range, want 1 to 65535", "spec.ports[1].targetPort: 70000 is out of range")
}

func TestEndpointSlice(t *testing.T) {
	got, err := EndpointSlice(decode[discoveryv1.EndpointSlice](t, `
metadata: {name: cart-abc, namespace: shop, labels: {kubernetes.io/service-name: cart}}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP, appProtocol: http}
- {name: dns, port: 53, protocol: UDP}
endpoints:
- addresses: [10.1.0.2]
  nodeName: node-a
  targetRef: {kind: Pod, name: cart-1, namespace: shop}
- addresses: [10.1.0.3]
  conditions: {ready: false, serving: true, terminating: true}
  targetRef: {kind: Pod, name: cart-2}
- addresses: [10.1.0.4]
  conditions: {ready: false}
- addresses: [10.1.0.5]
  conditions: {ready: false, serving: true, terminating: false}
- addresses: [192.168.0.9]
  conditions: {ready: true}
  targetRef: {kind: Node, name: n}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &model.EndpointSlice{
		ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "cart-abc", Labels: map[string]string{"kubernetes.io/service-name": "cart"}},
		Service:    "cart",
		Ports: []model.EndpointPort{
			{Name: "http", Port: 8080, Protocol: "TCP", AppProtocol: "http"},
			{Name: "dns", Port: 53, Protocol: "UDP"},
		},
		Endpoints: []model.Endpoint{
			{Addresses: []string{"10.1.0.2"}, Ready: true, NodeName: "node-a", Pod: "shop/cart-1"}, // no conditions: ready
			{Addresses: []string{"10.1.0.3"}, Ready: false, Pod: "shop/cart-2"},                    // serving but terminating
			{Addresses: []string{"10.1.0.4"}, Ready: false},                                        // not ready, serving unknown
			{Addresses: []string{"10.1.0.5"}, Ready: true},                                         // serving, not terminating
			{Addresses: []string{"192.168.0.9"}, Ready: true},                                      // not a pod
		},
	}
	if d := diff(got, want); d != "" {
		t.Errorf("EndpointSlice (-want +got):\n%s", d)
	}

	_, err = EndpointSlice(decode[discoveryv1.EndpointSlice](t, `
metadata: {name: x, namespace: shop}
addressType: FQDN
endpoints: [{addresses: []}]
`))
	wantInvalid(t, err, "EndpointSlice shop/x: ", "metadata.labels: missing kubernetes.io/service-name",
		"addressType: FQDN is not supported", "endpoints[0].addresses: required")
	_, err = EndpointSlice(decode[discoveryv1.EndpointSlice](t, `
metadata: {name: x, namespace: shop, labels: {kubernetes.io/service-name: cart}}
addressType: IPv4
endpoints: [{addresses: [not-an-ip]}]
`))
	wantInvalid(t, err, `endpoints[0].addresses[0]: "not-an-ip" is not an IP address`)
}
