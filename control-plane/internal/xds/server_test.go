package xds

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

var wlB = workload{Name: "shop/web", Node: "node-b", SpiffeID: "spiffe://cluster.local/ns/shop/sa/web", Address: "10.2.0.9"}

func hasAll(v *view) bool { return v.has(meshTypes...) }

// endpointIP reads the single endpoint address of a load assignment.
func endpointIP(t *testing.T, a *anypb.Any) string {
	t.Helper()
	var cla endpointv3.ClusterLoadAssignment
	if err := a.UnmarshalTo(&cla); err != nil {
		t.Fatal(err)
	}
	return cla.GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetAddress()
}

// checkMesh checks that a client of node-a sees the whole snapshot, Envoy
// types and the Weft type alike.
func checkMesh(t *testing.T, protocol string, v *view) {
	t.Helper()
	want := map[string][]string{
		resourcev3.ListenerType: {"outbound"},
		resourcev3.RouteType:    {"outbound-routes"},
		resourcev3.ClusterType:  {"echo"},
		resourcev3.EndpointType: {"echo"},
		workloadType:            {"shop/cart"},
		trustBundleType:         {"cluster.local"},
	}
	for typ, names := range want {
		if got := v.names(typ); !slices.Equal(got, names) {
			t.Errorf("%s: %s names = %v, want %v", protocol, typ, got, names)
		}
	}
	if w := v.resources[workloadType]["shop/cart"]; w != nil {
		if got := decodeWorkload(t, w); got != wlA {
			t.Errorf("%s: workload = %+v, want %+v", protocol, got, wlA)
		}
	}
	if c := v.resources[resourcev3.EndpointType]["echo"]; c != nil {
		if got := endpointIP(t, c); got != "10.0.0.1" {
			t.Errorf("%s: endpoint = %s, want 10.0.0.1", protocol, got)
		}
	}
}

// Both ADS protocols serve Envoy's types and Weft's own over mutual TLS.
func TestADSServesEnvoyAndWeftTypes(t *testing.T) {
	e := start(t, newModel(wlA, wlB))
	client := e.dial(e.nodeSVID("node-a"))

	d := openDelta(t, client, "node-a", meshTypes...)
	d.until(hasAll)
	checkMesh(t, "delta", d.view)

	s := openSotW(t, client, "node-a", meshTypes...)
	s.until(hasAll)
	checkMesh(t, "sotw", s.view)

	for typ, v := range s.view.versions {
		if v == "" || v != e.snapshot(t, "node-a").GetVersion(typ) {
			t.Errorf("sotw %s version = %q, want the snapshot's", typ, v)
		}
	}
	for _, p := range []string{protocolSotW, protocolDelta} {
		if got := e.counter(e.srv.metrics.clients.WithLabelValues(p)); got != 1 {
			t.Errorf("weft_xds_clients{protocol=%s} = %v, want 1", p, got)
		}
	}
	if got := e.counter(e.srv.metrics.pushes.WithLabelValues(typeLabel(workloadType))); got != 2 {
		t.Errorf("workload pushes = %v, want 2 (one per client)", got)
	}
	if got := e.srv.Connected(); !slices.Equal(got, []string{"node-a"}) {
		t.Errorf("Connected() = %v, want [node-a]", got)
	}
}

func (e *env) snapshot(t *testing.T, node string) *Snapshot {
	t.Helper()
	s, err := e.srv.cache.GetSnapshot(node)
	if err != nil {
		t.Fatal(err)
	}
	return s.(*Snapshot)
}

// waitSet waits until the server has finished setting the snapshot the
// node has now (clients may see it a moment before).
func (e *env) waitSet(node, trigger string) {
	e.t.Helper()
	e.waitLog("xDS snapshot set", "node="+node, "trigger="+trigger, "version="+e.snapshot(e.t, node).Version())
}

// latencyCount is how many snapshots a trigger set.
func (e *env) latencyCount(t *testing.T, trigger string) uint64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "weft_xds_push_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "trigger" && l.GetValue() == trigger {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

// A client may ask for some resources of a type by name, as proxyless gRPC
// does for its one listener, and is answered with those alone.
func TestSotWNamedSubscription(t *testing.T) {
	m := newModel(wlA)
	m.extra = map[string][]types.Resource{resourcev3.ListenerType: {tcpListener("opaque", "echo")}}
	e := start(t, m)
	s := openSotW(t, e.dial(e.nodeSVID("node-a")), "", nil...)
	if err := s.stream.Send(&discoverygrpc.DiscoveryRequest{
		Node: &corev3.Node{Id: "node-a"}, TypeUrl: resourcev3.ListenerType, ResourceNames: []string{"outbound"},
	}); err != nil {
		t.Fatal(err)
	}
	s.until(func(v *view) bool { return v.has(resourcev3.ListenerType) })
	if got := s.view.names(resourcev3.ListenerType); !slices.Equal(got, []string{"outbound"}) {
		t.Errorf("listeners = %v, want only the one asked for", got)
	}
	if got := len(e.snapshot(t, "node-a").GetResources(resourcev3.ListenerType)); got != 2 {
		t.Errorf("snapshot has %d listeners, want 2", got)
	}
}

// A burst of model changes reaches a connected client as one push of the
// final state; a rebuild that changes nothing pushes nothing.
func TestUpdatesAreDebounced(t *testing.T) {
	m := newModel(wlA)
	e := start(t, m)
	d := openDelta(t, e.dial(e.nodeSVID("node-a")), "node-a", meshTypes...)
	d.until(hasAll)
	oldSystem := d.view.versions[resourcev3.EndpointType]
	oldResource := e.snapshot(t, "node-a").GetVersionMap(resourcev3.EndpointType)["echo"]
	builds := m.buildCount("node-a")
	pushes := e.counter(e.srv.metrics.pushes.WithLabelValues(typeLabel(resourcev3.EndpointType)))

	for rev := 2; rev <= 51; rev++ {
		m.set(rev, false)
		e.srv.Notify()
	}
	// Only the endpoint address depends on the revision, so the next
	// response is the load assignment, and it must be the last revision.
	resp := d.next(t)
	if resp.GetTypeUrl() != resourcev3.EndpointType || len(resp.GetResources()) != 1 {
		t.Fatalf("first response after the burst: %s with %d resources, want one %s", resp.GetTypeUrl(), len(resp.GetResources()), resourcev3.EndpointType)
	}
	r := resp.GetResources()[0]
	if got := endpointIP(t, r.GetResource()); got != "10.0.0.51" {
		t.Errorf("endpoint after the burst = %s, want 10.0.0.51 (no intermediate state)", got)
	}
	if r.GetVersion() == oldResource || resp.GetSystemVersionInfo() == oldSystem {
		t.Errorf("versions unchanged after the burst: resource %s, system %s", r.GetVersion(), resp.GetSystemVersionInfo())
	}
	if got := m.buildCount("node-a"); got != builds+1 {
		t.Errorf("builds for the burst = %d, want 1", got-builds)
	}
	if got := e.counter(e.srv.metrics.pushes.WithLabelValues(typeLabel(resourcev3.EndpointType))); got != pushes+1 {
		t.Errorf("endpoint pushes for the burst = %v, want 1", got-pushes)
	}
	e.waitSet("node-a", triggerChange)
	if got := e.latencyCount(t, triggerChange); got != 1 {
		t.Errorf("snapshots set by changes = %d, want 1", got)
	}

	// A change notice with no effect on node-a: rebuilt, not set again.
	e.srv.Notify()
	e.model.waitBuilds(t, "node-a", builds+2)
	m.set(52, false)
	e.srv.Notify()
	resp = d.next(t)
	if got := endpointIP(t, resp.GetResources()[0].GetResource()); resp.GetTypeUrl() != resourcev3.EndpointType || got != "10.0.0.52" {
		t.Errorf("next response: %s %s, want the load assignment with 10.0.0.52", resp.GetTypeUrl(), got)
	}
	e.waitSet("node-a", triggerChange)
	if got := e.latencyCount(t, triggerChange); got != 2 {
		t.Errorf("snapshots set by changes = %d, want 2 (the no-op rebuild set nothing)", got)
	}
}

// next receives the next response or fails.
func (c *deltaClient) next(t *testing.T) *discoverygrpc.DeltaDiscoveryResponse {
	t.Helper()
	resp, err := c.recv()
	if err != nil {
		t.Fatalf("delta stream: %v", err)
	}
	return resp
}

// waitBuilds waits until the Builder ran n times for node.
func (m *model) waitBuilds(t *testing.T, node string, n int) {
	t.Helper()
	for m.buildCount(node) < n {
		select {
		case <-m.built:
		case <-t.Context().Done():
			t.Fatal("test ended")
		}
	}
}

// A stream whose node.id is not the node of its certificate is closed.
func TestRefusesNodeIDOtherThanCertificate(t *testing.T) {
	m := newModel(wlA, wlB)
	e := start(t, m)
	client := e.dial(e.nodeSVID("node-a"))
	for _, tc := range []struct{ id, msg string }{
		{"node-b", `node.id "node-b" does not match the client certificate's node "node-a"`},
		{"", `no node.id`},
	} {
		_, err := openDelta(t, client, tc.id, meshTypes...).recv()
		if !refusedWith(err, codes.PermissionDenied, tc.msg) {
			t.Errorf("delta as %q: %v, want PermissionDenied %q", tc.id, err, tc.msg)
		}
		_, err = openSotW(t, client, tc.id, meshTypes...).recv()
		if !refusedWith(err, codes.PermissionDenied, tc.msg) {
			t.Errorf("sotw as %q: %v, want PermissionDenied %q", tc.id, err, tc.msg)
		}
	}

	// Switching node.id on an accepted stream closes it too.
	d := openDelta(t, client, "node-a", meshTypes...)
	d.until(hasAll)
	if err := d.stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: workloadType, Node: &corev3.Node{Id: "node-b"}}); err != nil {
		t.Fatal(err)
	}
	var err error
	for err == nil {
		_, err = d.stream.Recv()
	}
	if !refusedWith(err, codes.PermissionDenied, "does not match") {
		t.Errorf("switching node.id: %v, want PermissionDenied", err)
	}

	if got := e.counter(e.srv.metrics.rejected.WithLabelValues(ReasonNodeMismatch)); got != 5 {
		t.Errorf("node_mismatch refusals = %v, want 5", got)
	}
	if got := m.buildCount("node-b"); got != 0 {
		t.Errorf("node-b was built %d times for a node-a certificate", got)
	}
}

// Only node SVIDs of this trust bundle may open a stream.
func TestRefusesCallersWithoutNodeSVID(t *testing.T) {
	e := start(t, newModel(wlA))
	workloadID, err := certs.WorkloadID(certstest.TrustDomain, "shop", "cart")
	if err != nil {
		t.Fatal(err)
	}
	other := start(t, newModel()) // another CA
	tests := []struct {
		name   string
		client discoverygrpc.AggregatedDiscoveryServiceClient
		code   codes.Code
		msg    string
		reason string
	}{
		{"no client certificate", e.dial(nil), codes.Unauthenticated, "needs a node SVID", ReasonNoClientCert},
		{"workload SVID", e.dial(e.svid(workloadID)), codes.PermissionDenied, "is not a node proxy", ReasonNotANode},
		// The handshake itself fails; the server never sees a stream.
		{"node SVID of another CA", e.dial(other.nodeSVID("node-a")), codes.Unavailable, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openDelta(t, tc.client, "node-a", meshTypes...).recv()
			if !refusedWith(err, tc.code, tc.msg) {
				t.Errorf("delta: %v, want %v %q", err, tc.code, tc.msg)
			}
			_, err = openSotW(t, tc.client, "node-a", meshTypes...).recv()
			if !refusedWith(err, tc.code, tc.msg) {
				t.Errorf("sotw: %v, want %v %q", err, tc.code, tc.msg)
			}
			if tc.reason == "" {
				return
			}
			if got := e.counter(e.srv.metrics.rejected.WithLabelValues(tc.reason)); got != 2 {
				t.Errorf("%s refusals = %v, want 2", tc.reason, got)
			}
		})
	}
	if got := e.srv.Connected(); len(got) != 0 {
		t.Errorf("Connected() = %v, want none", got)
	}
}

// The bundle is checked at every stream, not only at the handshake: after
// a rotation to a root that no longer covers a node's certificate, the
// node cannot open another stream on its old connection.
func TestRefusesCertificateTheBundleNoLongerCovers(t *testing.T) {
	e := start(t, newModel(wlA))
	client := e.dial(e.nodeSVID("node-a"))
	d := openDelta(t, client, "node-a", meshTypes...)
	d.until(hasAll)

	root, err := certs.NewRoot(certstest.TrustDomain, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.authority.Update(root, certs.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err = openSotW(t, client, "node-a", meshTypes...).recv()
	if !refusedWith(err, codes.Unauthenticated, "client certificate not valid") {
		t.Errorf("stream after the rotation: %v, want Unauthenticated", err)
	}
	if got := e.counter(e.srv.metrics.rejected.WithLabelValues(ReasonBadClientCert)); got != 1 {
		t.Errorf("bad_client_certificate refusals = %v, want 1", got)
	}
}

// Config is checked in one place.
func TestConfigValidation(t *testing.T) {
	build := func(string) (map[string][]types.Resource, error) { return nil, nil }
	auth := func(context.Context) (string, error) { return "", nil }
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"defaults", Config{Builder: build, Authenticate: auth}, ""},
		{"no builder", Config{Authenticate: auth}, "Builder is required"},
		{"no authenticator", Config{Builder: build}, "Authenticate is required"},
		{"max delay below debounce", Config{Builder: build, Authenticate: auth, Debounce: time.Second, MaxDelay: time.Millisecond}, "shorter than Debounce"},
		{"negative", Config{Builder: build, Authenticate: auth, Debounce: -1}, "must not be negative"},
		{"long debounce stretches the default max delay", Config{Builder: build, Authenticate: auth, Debounce: 2 * time.Second}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// An inconsistent snapshot is refused and counted; clients keep the
// previous one and the next good one replaces it.
func TestInconsistentSnapshotIsRefused(t *testing.T) {
	m := newModel(wlA)
	e := start(t, m)
	d := openDelta(t, e.dial(e.nodeSVID("node-a")), "node-a", meshTypes...)
	d.until(hasAll)
	good := e.snapshot(t, "node-a").Version()

	m.set(2, true)
	e.srv.Notify()
	e.waitLog("refusing xDS snapshot", "node=node-a", `route configuration "outbound-routes" does not exist`)
	if got := e.counter(e.srv.metrics.inconsistent); got != 1 {
		t.Errorf("inconsistent snapshots = %v, want 1", got)
	}
	if got := e.snapshot(t, "node-a").Version(); got != good {
		t.Errorf("snapshot version = %s after the refusal, want the previous %s", got, good)
	}
	dump, err := e.srv.Debug("node-a")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dump), "10.0.0.1") || !strings.Contains(string(dump), "outbound-routes") {
		t.Errorf("debug dump after the refusal is not the previous snapshot:\n%s", dump)
	}

	m.set(3, false)
	e.srv.Notify()
	resp := d.next(t)
	if len(resp.GetRemovedResources()) > 0 || resp.GetTypeUrl() != resourcev3.EndpointType {
		t.Fatalf("first response after the refusal: %s removing %v, want the load assignment", resp.GetTypeUrl(), resp.GetRemovedResources())
	}
	if got := endpointIP(t, resp.GetResources()[0].GetResource()); got != "10.0.0.3" {
		t.Errorf("endpoint = %s, want 10.0.0.3 (the refused revision 2 never reaches clients)", got)
	}
}

// Each node receives its own workloads only.
func TestNodesSeeOnlyTheirOwnWorkloads(t *testing.T) {
	e := start(t, newModel(wlA, wlB))
	da := openDelta(t, e.dial(e.nodeSVID("node-a")), "node-a", workloadType)
	db := openSotW(t, e.dial(e.nodeSVID("node-b")), "node-b", workloadType)
	da.until(func(v *view) bool { return v.has(workloadType) })
	db.until(func(v *view) bool { return v.has(workloadType) })
	if got := da.view.names(workloadType); !slices.Equal(got, []string{"shop/cart"}) {
		t.Errorf("node-a workloads = %v, want [shop/cart]", got)
	}
	if got := db.view.names(workloadType); !slices.Equal(got, []string{"shop/web"}) {
		t.Errorf("node-b workloads = %v, want [shop/web]", got)
	}
	if got := decodeWorkload(t, db.view.resources[workloadType]["shop/web"]); got != wlB {
		t.Errorf("node-b workload = %+v, want %+v", got, wlB)
	}

	// The admin view agrees.
	h := e.srv.DebugHandler()
	get := func(query string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/config"+query, nil))
		return rec.Code, rec.Body.String()
	}
	code, body := get("?node=node-b")
	if code != http.StatusOK || !strings.Contains(body, "shop/web") || strings.Contains(body, "shop/cart") {
		t.Errorf("debug node-b: %d\n%s", code, body)
	}
	if code, _ := get("?node=node-z"); code != http.StatusNotFound {
		t.Errorf("debug of an unknown node: %d, want 404", code)
	}
	code, body = get("")
	var list struct{ Connected []string }
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("debug list: %d %v\n%s", code, err, body)
	}
	if diff := cmp.Diff([]string{"node-a", "node-b"}, list.Connected); diff != "" {
		t.Errorf("connected nodes (-want +got):\n%s", diff)
	}
}

// A node stays connected while any of its streams is open; when the last
// closes its snapshot is dropped, and a reconnect builds it again.
func TestLastStreamClosingForgetsNode(t *testing.T) {
	m := newModel(wlA)
	e := start(t, m)
	client := e.dial(e.nodeSVID("node-a"))
	d := openDelta(t, client, "node-a", meshTypes...)
	d.until(hasAll)
	s := openSotW(t, client, "node-a", meshTypes...)
	s.until(hasAll)

	closeAndDrain(t, d.stream)
	if got := e.counter(e.srv.metrics.clients.WithLabelValues(protocolDelta)); got != 0 {
		t.Errorf("delta clients after close = %v, want 0", got)
	}
	if _, err := e.srv.Debug("node-a"); err != nil {
		t.Errorf("node-a lost its snapshot with a stream still open: %v", err)
	}

	closeAndDrain(t, s.stream)
	if got := e.srv.Connected(); len(got) != 0 {
		t.Errorf("Connected() = %v after the last stream closed", got)
	}
	e.waitLog("snapshot cleared", "node=node-a")
	if _, err := e.srv.Debug("node-a"); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("Debug(node-a) after disconnect: %v, want ErrNoSnapshot", err)
	}

	builds := m.buildCount("node-a")
	again := openDelta(t, client, "node-a", meshTypes...)
	again.until(hasAll)
	checkMesh(t, "delta after reconnect", again.view)
	if got := m.buildCount("node-a"); got != builds+1 {
		t.Errorf("builds on reconnect = %d, want 1", got-builds)
	}
	e.waitSet("node-a", triggerConnect)
	if got := e.latencyCount(t, triggerConnect); got != 2 {
		t.Errorf("snapshots set on connect = %d, want 2", got)
	}
}

// closeAndDrain half-closes a client stream and reads until the server
// ends it; the server's close callbacks have run by then.
func closeAndDrain[Resp any](t *testing.T, s interface {
	CloseSend() error
	Recv() (Resp, error)
}) {
	t.Helper()
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("stream ended with %v, want EOF", err)
		}
	}
}
