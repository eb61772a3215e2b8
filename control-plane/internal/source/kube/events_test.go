package kube

import (
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// These tests drive the event handlers directly, without a cluster: the
// informers' part is covered by TestScenario.

func newEventSource(t *testing.T) (*Source, map[string]*kind) {
	s := &Source{log: slog.New(slog.NewTextHandler(t.Output(), nil)), work: model.NewSnapshot(),
		pub: model.NewSnapshot(), changed: make(chan struct{})}
	kinds := map[string]*kind{}
	for _, k := range allKinds(nil, nil, nil) { // informers are never built here
		kinds[k.name] = k
	}
	return s, kinds
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestEvents(t *testing.T) {
	s, kinds := newEventSource(t)
	pods := kinds["Pod"]
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p", ResourceVersion: "1"},
		Status: corev1.PodStatus{PodIP: "10.0.0.1"}}

	ch := s.Changed()
	s.upsert(pods, pod)
	if !closed(ch) || s.Snapshot().Pods["a/p"].IP != "10.0.0.1" {
		t.Fatal("adding a pod did not signal a change or is not in the Snapshot")
	}
	first := s.Snapshot()

	// A new resourceVersion with nothing the model carries: no change.
	ch = s.Changed()
	same := pod.DeepCopy()
	same.ResourceVersion = "2"
	same.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	s.upsert(pods, same)
	if closed(ch) || s.Snapshot() != first {
		t.Error("an update that leaves the model as it was signalled a change or made a new Snapshot")
	}

	// A deletion seen only as a tombstone removes the pod.
	s.remove(pods, cache.DeletedFinalStateUnknown{Key: "a/p", Obj: pod})
	if !closed(ch) || s.Snapshot().Pods["a/p"] != nil {
		t.Error("a tombstone did not remove the pod")
	}
	if first.Pods["a/p"] == nil {
		t.Error("removing the pod changed an earlier Snapshot")
	}

	// An object that stops converting leaves the model.
	slices := kinds["EndpointSlice"]
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "e",
		Labels: map[string]string{discoveryv1.LabelServiceName: "svc"}}, AddressType: discoveryv1.AddressTypeIPv4}
	s.upsert(slices, es)
	if s.Snapshot().EndpointSlices["a/e"] == nil {
		t.Fatal("slice not added")
	}
	ch = s.Changed()
	bad := es.DeepCopy()
	bad.Labels = nil
	s.upsert(slices, bad)
	if !closed(ch) || s.Snapshot().EndpointSlices["a/e"] != nil {
		t.Error("a slice that no longer converts is still in the model")
	}
	// Deleting something unknown changes nothing.
	ch = s.Changed()
	s.remove(slices, es)
	if closed(ch) {
		t.Error("deleting an object that is not in the model signalled a change")
	}

	// Routes of both kinds share a map but not keys.
	if k := kinds["GRPCRoute"].key("a", "r"); k != "GRPCRoute/a/r" {
		t.Errorf("GRPCRoute key = %q", k)
	}
	if k := kinds["Namespace"].key("", "a"); k != "a" {
		t.Errorf("Namespace key = %q", k)
	}
}
