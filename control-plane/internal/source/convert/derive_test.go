package convert

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

func TestDeriveEndpointSlices(t *testing.T) {
	svc := &model.Service{
		ObjectMeta: model.ObjectMeta{Namespace: "shop", Name: "cart"},
		Selector:   map[string]string{"app": "cart"},
		Ports: []model.ServicePort{
			{Name: "http", Port: 80, Protocol: "TCP", AppProtocol: "http", TargetPort: 8080},
			{Name: "grpc", Port: 9090, Protocol: "TCP", TargetPortName: "grpc"},
		},
	}
	pod := func(name, ip string, grpcPort int32, mutate ...func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"app": "cart", "v": "1"}},
			Spec:       corev1.PodSpec{NodeName: "node-" + name, Containers: []corev1.Container{{Name: "app"}}},
			Status:     corev1.PodStatus{PodIP: ip},
		}
		if grpcPort != 0 {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "grpc", ContainerPort: grpcPort}}
		}
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	notReady := func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	}
	readyUnknown := func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionUnknown}}
	}
	httpPort := model.EndpointPort{Name: "http", Port: 8080, Protocol: "TCP", AppProtocol: "http"}
	grpcPort := func(n int32) model.EndpointPort { return model.EndpointPort{Name: "grpc", Port: n, Protocol: "TCP"} }
	meta := func(name string) model.ObjectMeta {
		return model.ObjectMeta{Namespace: "shop", Name: name, Labels: map[string]string{"kubernetes.io/service-name": "cart"}}
	}

	got := DeriveEndpointSlices(svc, []*corev1.Pod{
		pod("b", "10.1.0.2", 9000, notReady),
		pod("a", "10.1.0.1", 9000),
		pod("c", "10.1.0.3", 9001, readyUnknown), // resolves grpc differently
		pod("d", "10.1.0.4", 0),                  // has no grpc port
		pod("e", "", 9000),                       // no IP yet
		pod("f", "10.1.0.6", 9000, func(p *corev1.Pod) { p.Namespace = "other" }),
		pod("g", "10.1.0.7", 9000, func(p *corev1.Pod) { p.Labels = map[string]string{"app": "web"} }),
		pod("h", "10.1.0.8", 9000, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		pod("i", "10.1.0.9", 9000, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }),
		pod("j", "10.1.0.10", 9000, func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP }),
	})
	want := []*model.EndpointSlice{
		{ObjectMeta: meta("cart-derived-1"), Service: "cart", Ports: []model.EndpointPort{httpPort, grpcPort(9000)},
			Endpoints: []model.Endpoint{
				{Addresses: []string{"10.1.0.1"}, Ready: true, NodeName: "node-a", Pod: "shop/a"},
				{Addresses: []string{"10.1.0.2"}, Ready: false, NodeName: "node-b", Pod: "shop/b"},
			}},
		{ObjectMeta: meta("cart-derived-2"), Service: "cart", Ports: []model.EndpointPort{httpPort, grpcPort(9001)},
			Endpoints: []model.Endpoint{{Addresses: []string{"10.1.0.3"}, Ready: true, NodeName: "node-c", Pod: "shop/c"}}},
		{ObjectMeta: meta("cart-derived-3"), Service: "cart", Ports: []model.EndpointPort{httpPort},
			Endpoints: []model.Endpoint{
				{Addresses: []string{"10.1.0.4"}, Ready: true, NodeName: "node-d", Pod: "shop/d"},
				{Addresses: []string{"10.1.0.10"}, Ready: true, NodeName: "node-j", Pod: "shop/j"}, // grpc is TCP, the port UDP
			}},
	}
	if d := diff(got, want); d != "" {
		t.Errorf("DeriveEndpointSlices (-want +got):\n%s", d)
	}

	// One group gets the plain name.
	got = DeriveEndpointSlices(svc, []*corev1.Pod{pod("a", "10.1.0.1", 9000)})
	if len(got) != 1 || got[0].Name != "cart-derived" {
		t.Errorf("one group: got %d slices, first %q; want one named cart-derived", len(got), got[0].Name)
	}
	// No pods: one empty slice with the ports that resolve without a pod.
	got = DeriveEndpointSlices(svc, nil)
	want = []*model.EndpointSlice{{ObjectMeta: meta("cart-derived"), Service: "cart", Ports: []model.EndpointPort{httpPort}}}
	if d := diff(got, want); d != "" {
		t.Errorf("no pods (-want +got):\n%s", d)
	}
	// No selector: endpoints are given by hand, nothing is derived.
	noSel := *svc
	noSel.Selector = nil
	if got := DeriveEndpointSlices(&noSel, []*corev1.Pod{pod("a", "10.1.0.1", 9000)}); got != nil {
		t.Errorf("a Service without a selector got %d derived slices, want none", len(got))
	}
}
