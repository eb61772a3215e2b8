package xds

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// rawDelta is a delta stream driven request by request: nothing is ACKed
// unless the test says so.
type rawDelta struct {
	t *testing.T
	s discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

func (e *env) rawDelta(node string) *rawDelta {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	s, err := e.dial(e.nodeSVID(node)).DeltaAggregatedResources(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return &rawDelta{t: e.t, s: s}
}

func (r *rawDelta) send(req *discoverygrpc.DeltaDiscoveryRequest) {
	r.t.Helper()
	if err := r.s.Send(req); err != nil {
		r.t.Fatal(err)
	}
}

// next receives the next response, which must be of type typ.
func (r *rawDelta) next(typ string) *discoverygrpc.DeltaDiscoveryResponse {
	r.t.Helper()
	resp, err := r.s.Recv()
	if err != nil {
		r.t.Fatalf("delta stream: %v", err)
	}
	if resp.GetTypeUrl() != typ {
		r.t.Fatalf("response of type %s, want %s", resp.GetTypeUrl(), typ)
	}
	return resp
}

func (r *rawDelta) ack(resp *discoverygrpc.DeltaDiscoveryResponse) {
	r.t.Helper()
	r.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

// delta is the content of a response: names sent with their versions, and
// names removed.
type delta struct {
	Sent    map[string]string
	Removed []string
}

func deltaOf(resp *discoverygrpc.DeltaDiscoveryResponse) delta {
	d := delta{Sent: map[string]string{}, Removed: resp.GetRemovedResources()}
	for _, r := range resp.GetResources() {
		d.Sent[r.GetName()] = r.GetVersion()
	}
	return d
}

// serviceType is the type the tests below subscribe to by name; nothing
// references its resources, so any set of them is consistent.
const serviceType = typePrefix + "weft.xds.v1.Service"

// setServices makes every node's snapshot carry a Service of each name; a
// Service's content (and so its version) changes with its revision.
func (m *model) setServices(revs map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var list []types.Resource
	for _, name := range slices.Sorted(maps.Keys(revs)) {
		list = append(list, &xdsv1.Service{Name: name, Hostname: fmt.Sprintf("rev-%d", revs[name])})
	}
	if m.extra == nil {
		m.extra = map[string][]types.Resource{}
	}
	m.extra[serviceType] = list
}

// versionsOf is the per-resource versions of the Services in node's snapshot.
func (e *env) versionsOf(node string) map[string]string {
	return e.snapshot(e.t, node).GetVersionMap(serviceType)
}

// change applies a model change and waits until node has the new snapshot.
func (e *env) change(node string, apply func()) {
	e.t.Helper()
	apply()
	e.srv.Notify()
	e.waitLog("xDS snapshot set", "node="+node, "trigger="+triggerChange)
}

func TestDeltaNamedSubscription(t *testing.T) {
	m := newModel(wlA)
	m.setServices(map[string]int{"a": 1, "b": 1, "c": 1})
	e := start(t, m)
	r := e.rawDelta("node-a")
	r.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: serviceType,
		ResourceNamesSubscribe: []string{"a", "missing"}})
	resp := r.next(serviceType)
	v := e.versionsOf("node-a")
	if diff := cmp.Diff(delta{Sent: map[string]string{"a": v["a"]}}, deltaOf(resp), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("first response (-want +got):\n%s", diff)
	}
	r.ack(resp)

	// Subscribing to one more name sends just that one.
	r.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: serviceType, ResourceNamesSubscribe: []string{"b"}})
	resp = r.next(serviceType)
	if diff := cmp.Diff(delta{Sent: map[string]string{"b": v["b"]}}, deltaOf(resp), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after subscribing to b (-want +got):\n%s", diff)
	}
	r.ack(resp)

	// After unsubscribing from a, its removal is not sent; the names still
	// subscribed to are, as they appear, change and go.
	r.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: serviceType, ResourceNamesUnsubscribe: []string{"a"}})
	e.change("node-a", func() { m.setServices(map[string]int{"missing": 1, "c": 2}) })
	resp = r.next(serviceType)
	v = e.versionsOf("node-a")
	if diff := cmp.Diff(delta{Sent: map[string]string{"missing": v["missing"]}, Removed: []string{"b"}}, deltaOf(resp), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after the change (-want +got):\n%s", diff)
	}
}

// A client that reconnects with the versions it holds is sent only what
// changed since, and the removal of what is gone.
func TestDeltaResumesFromInitialVersions(t *testing.T) {
	m := newModel(wlA)
	m.setServices(map[string]int{"a": 1, "b": 1, "c": 1})
	e := start(t, m)
	first := e.rawDelta("node-a")
	first.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: serviceType, ResourceNamesSubscribe: []string{"*"}})
	held := deltaOf(first.next(serviceType)).Sent
	if diff := cmp.Diff(e.versionsOf("node-a"), held); diff != "" {
		t.Fatalf("resource versions sent differ from the snapshot's (-snapshot +sent):\n%s", diff)
	}

	// b changes, c goes, d comes; a stays as it is.
	e.change("node-a", func() { m.setServices(map[string]int{"a": 1, "b": 2, "d": 1}) })
	v := e.versionsOf("node-a")
	if v["b"] == held["b"] {
		t.Fatal("test broken: b's version did not change")
	}
	again := e.rawDelta("node-a")
	again.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: serviceType,
		ResourceNamesSubscribe: []string{"*"}, InitialResourceVersions: held})
	want := delta{Sent: map[string]string{"b": v["b"], "d": v["d"]}, Removed: []string{"c"}}
	if diff := cmp.Diff(want, deltaOf(again.next(serviceType))); diff != "" {
		t.Errorf("first response after reconnecting (-want +got):\n%s", diff)
	}
}

// Unsubscribing from a name while subscribed to all sends that resource
// again: the client must learn that it still exists.
func TestDeltaUnsubscribeWhileWildcard(t *testing.T) {
	m := newModel(wlA)
	m.setServices(map[string]int{"a": 1, "b": 1})
	e := start(t, m)
	r := e.rawDelta("node-a")
	r.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: serviceType, ResourceNamesSubscribe: []string{"*", "a"}})
	resp := r.next(serviceType)
	r.ack(resp)
	v := e.versionsOf("node-a")
	r.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: serviceType, ResourceNamesUnsubscribe: []string{"a"}})
	if diff := cmp.Diff(delta{Sent: map[string]string{"a": v["a"]}}, deltaOf(r.next(serviceType)), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("after unsubscribing from a (-want +got):\n%s", diff)
	}
}

// A wildcard subscription is answered at once even when the snapshot has
// nothing of its type.
func TestDeltaAnswersEmptyWildcard(t *testing.T) {
	e := start(t, newModel(wlA))
	r := e.rawDelta("node-a")
	r.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: serviceType})
	if resp := r.next(serviceType); len(resp.GetResources())+len(resp.GetRemovedResources()) != 0 {
		t.Errorf("response for a type with no resources: %d sent, %d removed; want none", len(resp.GetResources()), len(resp.GetRemovedResources()))
	}
}

// While a response awaits the client's answer, newer snapshots are not
// sent; the answer is followed by one response with the latest state.
func TestDeltaCoalescesUntilAnswered(t *testing.T) {
	m := newModel(wlA)
	e := start(t, m)
	r := e.rawDelta("node-a")
	r.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: resourcev3.EndpointType})
	first := r.next(resourcev3.EndpointType)
	e.change("node-a", func() { m.set(2, false) })
	e.change("node-a", func() { m.set(3, false) })
	r.ack(first)
	resp := r.next(resourcev3.EndpointType)
	if len(resp.GetResources()) != 1 {
		t.Fatalf("response after the answer has %d resources, want 1", len(resp.GetResources()))
	}
	if got := endpointIP(t, resp.GetResources()[0].GetResource()); got != "10.0.0.3" {
		t.Errorf("endpoint after the answer = %s, want 10.0.0.3 (the latest)", got)
	}
}

// With a send budget smaller than any response, streams take turns, and
// every one of them still gets its whole configuration.
func TestDeltaSendBudgetTakesTurns(t *testing.T) {
	nodes := []string{"node-a", "node-b", "node-c", "node-d"}
	var wls []workload
	for _, n := range nodes {
		wls = append(wls, workload{Name: "shop/" + n, Node: n, SpiffeID: "spiffe://cluster.local/ns/shop/sa/" + n, Address: "10.2.0.1"})
	}
	e := startWith(t, newModel(wls...), func(c *Config) { c.SendBudget = 1 })
	var clients []*deltaClient
	for _, n := range nodes {
		clients = append(clients, openDelta(t, e.dial(e.nodeSVID(n)), n, meshTypes...))
	}
	// Every client reads at once, as node proxies do: one that does not
	// read holds up the others until its share expires.
	errs := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			for !hasAll(c.view) {
				if _, err := c.recv(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatalf("delta stream: %v", err)
		}
	}
}
