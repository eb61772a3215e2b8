package xdsclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/server/config"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/certs/certstest"
)

// wantInitial is names(State) for initialResources.
var wantInitial = map[string][]string{
	"envoy.config.listener.v3.Listener":              {"l1", "l2"},
	"envoy.config.route.v3.RouteConfiguration":       {"r1"},
	"envoy.config.cluster.v3.Cluster":                {"c1"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment": {"c1"},
	"weft.xds.v1.Workload":                           {"ns/pod"},
	"weft.xds.v1.Service":                            {"ns/svc"},
	"weft.xds.v1.TrustBundle":                        {"cluster.local"},
}

func statPrefix(t *testing.T, s State, name string) string {
	t.Helper()
	r, ok := s.Get(listenerType, name)
	if !ok {
		return "<absent>"
	}
	var l listenerv3.Listener
	if err := r.Any.UnmarshalTo(&l); err != nil {
		t.Fatal(err)
	}
	return l.GetStatPrefix()
}

func TestSyncUpdateRemove(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []config.XDSOption
	}{
		{name: "legacy wildcard"},
		// A server that treats an empty subscription as "nothing": the
		// explicit "*" still subscribes to everything.
		{name: "explicit wildcard only", opts: []config.XDSOption{config.DeactivateLegacyWildcard()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			srv := e.startServer(t, "", initialResources(), tt.opts...)
			c := e.newClient(t, srv.addr)
			if c.Synced() || c.Connected() {
				t.Fatalf("Synced %v, Connected %v before Run; want false, false", c.Synced(), c.Connected())
			}
			c.start(t)
			waitFor(t, "initial sync", func() bool { return c.Synced() && c.Connected() })
			if diff := cmp.Diff(wantInitial, names(c.State())); diff != "" {
				t.Fatalf("state after sync (-want +got):\n%s", diff)
			}
			if got := c.metric(t, "weft_xds_client_connected"); got != 1 {
				t.Errorf("weft_xds_client_connected = %v, want 1", got)
			}

			// One response updating l1 and removing l2.
			if err := srv.caches[listenerType].UpdateResources(
				map[string]types.Resource{"l1": &listenerv3.Listener{Name: "l1", StatPrefix: "v2"}}, []string{"l2"}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "l1 updated and l2 removed", func() bool {
				s := c.State()
				return statPrefix(t, s, "l1") == "v2" && s.Len(listenerType) == 1
			})
			if err := srv.caches[serviceType].UpdateResource("ns/svc2", &xdsv1.Service{Name: "ns/svc2"}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "ns/svc2 added", func() bool { return c.State().Len(serviceType) == 2 })
			if got := names(c.State())["envoy.config.listener.v3.Listener"]; !cmp.Equal(got, []string{"l1"}) {
				t.Errorf("listeners %v after the service update, want [l1]", got)
			}

			if got := c.metric(t, "weft_xds_client_updates_total", "type", "envoy.config.listener.v3.Listener", "result", "ack"); got != 2 {
				t.Errorf("listener ACKs = %v, want 2 (sync and update)", got)
			}
			if got := c.metric(t, "weft_xds_client_updates_total", "type", "weft.xds.v1.Service", "result", "nack"); got != 0 {
				t.Errorf("service NACKs = %v, want 0", got)
			}
			if nacks := srv.nacks(); len(nacks) != 0 {
				t.Errorf("server got NACKs %q, want none", nacks)
			}
			// Apply saw every type arrive, then the two updates; the last
			// state it saw is the client's.
			states := c.applied.all()
			if len(states) != len(nodeTypes)+2 {
				t.Errorf("Apply called %d times, want %d", len(states), len(nodeTypes)+2)
			}
			if diff := cmp.Diff(names(c.State()), names(states[len(states)-1])); diff != "" {
				t.Errorf("last applied state differs from State() (-State +applied):\n%s", diff)
			}

			// Every initial request subscribed with "*" and named the node.
			reqs, _, _ := srv.recorded()
			for _, r := range reqs[:len(nodeTypes)] {
				if r.GetNode().GetId() != e.node || !cmp.Equal(r.GetResourceNamesSubscribe(), []string{"*"}) || r.GetResponseNonce() != "" {
					t.Errorf("initial request %v, want node %s, subscribe [*], no nonce", r, e.node)
				}
			}
		})
	}
}

// badListener marshals into bytes that do not unmarshal as a Listener:
// field 1 (name, a proto3 string) is not UTF-8.
var badListener = wrapperspb.Bytes([]byte{0xff, 0xfe})

func TestNACK(t *testing.T) {
	e := newEnv(t)
	srv := e.startServer(t, "", initialResources())
	c := e.newClient(t, srv.addr)
	c.start(t)
	waitFor(t, "initial sync", c.Synced)
	before := c.State()

	// A response with a good new listener and a bad update: all rejected.
	if err := srv.caches[listenerType].UpdateResources(map[string]types.Resource{
		"l1": badListener, "l3": &listenerv3.Listener{Name: "l3"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to get a NACK", func() bool { return len(srv.nacks()) == 1 })
	if msg := srv.nacks()[0]; !strings.Contains(msg, `envoy.config.listener.v3.Listener: "l1": `) {
		t.Errorf("error_detail %q, want it to name the bad listener", msg)
	}
	reqs, _, _ := srv.recorded()
	if code := reqs[len(reqs)-1].GetErrorDetail().GetCode(); code != 3 {
		t.Errorf("error_detail code %d, want 3 (INVALID_ARGUMENT)", code)
	}
	if after := c.State(); after.s != before.s {
		t.Errorf("a rejected response changed the state: %v, want %v", names(after), names(before))
	}
	if got := c.metric(t, "weft_xds_client_updates_total", "type", "envoy.config.listener.v3.Listener", "result", "nack"); got != 1 {
		t.Errorf("listener NACKs = %v, want 1", got)
	}

	// The next good version is accepted.
	if err := srv.caches[listenerType].UpdateResource("l1", &listenerv3.Listener{Name: "l1", StatPrefix: "fixed"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fixed l1", func() bool { return statPrefix(t, c.State(), "l1") == "fixed" })

	// Apply can reject too.
	c.applied.setReject(func(s State) error {
		if _, ok := s.Get(serviceType, "ns/bad"); ok {
			return fmt.Errorf("service ns/bad is not allowed")
		}
		return nil
	})
	before = c.State()
	if err := srv.caches[serviceType].UpdateResource("ns/bad", &xdsv1.Service{Name: "ns/bad"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second NACK", func() bool { return len(srv.nacks()) == 2 })
	if msg, want := srv.nacks()[1], "weft.xds.v1.Service: service ns/bad is not allowed"; msg != want {
		t.Errorf("error_detail %q, want %q", msg, want)
	}
	if after := c.State(); after.s != before.s {
		t.Errorf("a response Apply rejected changed the state")
	}
	if !c.Connected() {
		t.Errorf("a NACK ended the stream")
	}
}

func TestServerRestart(t *testing.T) {
	t.Run("linear cache", func(t *testing.T) { testServerRestart(t, false) })
	// Weft's control plane serves from a snapshot cache.
	t.Run("snapshot cache", func(t *testing.T) { testServerRestart(t, true) })
}

func testServerRestart(t *testing.T, snapshot bool) {
	e := newEnv(t)
	srv := e.start(t, serverConfig{snapshot: snapshot}, initialResources())
	c := e.newClient(t, srv.addr)
	c.start(t)
	waitFor(t, "initial sync", func() bool { return c.Synced() && c.Connected() })
	held := map[string]map[string]string{}
	for _, typ := range nodeTypes {
		held[typ] = c.State().Versions(typ)
	}
	firstSerial := func() string { _, _, s := srv.recorded(); return s[0] }()

	// The node SVID is renewed while connected: the next connection must
	// present the new one.
	renewed := certstest.NodeSVID(t, e.ca, e.node)
	e.svid.set(renewed)

	srv.stop()
	waitFor(t, "the client to notice", func() bool { return !c.Connected() })
	if !c.Synced() {
		t.Errorf("Synced false after a disconnection; want true (ever synced)")
	}
	if diff := cmp.Diff(wantInitial, names(c.State())); diff != "" {
		t.Errorf("state while disconnected (-want +got):\n%s", diff)
	}
	if got := c.metric(t, "weft_xds_client_connected"); got != 0 {
		t.Errorf("weft_xds_client_connected = %v while disconnected, want 0", got)
	}
	// Let it fail to reconnect at least once.
	waitFor(t, "a failed reconnection", func() bool { return c.metric(t, "weft_xds_client_reconnects_total") >= 1 })

	// While it was down: l1 changed, l2 went away, l3 and a workload came.
	res := initialResources()
	res[listenerType] = map[string]types.Resource{
		"l1": &listenerv3.Listener{Name: "l1", StatPrefix: "v2"},
		"l3": &listenerv3.Listener{Name: "l3"},
	}
	res[workloadType]["ns/pod2"] = &xdsv1.Workload{Name: "ns/pod2"}
	srv2 := e.start(t, serverConfig{addr: srv.addr, snapshot: snapshot}, res)
	waitFor(t, "the change after reconnecting", func() bool {
		s := c.State()
		return statPrefix(t, s, "l1") == "v2" && s.Len(listenerType) == 2 && s.Len(workloadType) == 2
	})
	waitFor(t, "connected", c.Connected)
	want := map[string][]string{}
	for k, v := range wantInitial {
		want[k] = v
	}
	want["envoy.config.listener.v3.Listener"] = []string{"l1", "l3"}
	want["weft.xds.v1.Workload"] = []string{"ns/pod", "ns/pod2"}
	if diff := cmp.Diff(want, names(c.State())); diff != "" {
		t.Errorf("state after reconnecting (-want +got):\n%s", diff)
	}

	// The new stream told the server what the client held ...
	reqs, resps, serials := srv2.recorded()
	for _, r := range reqs {
		if r.GetResponseNonce() != "" {
			continue
		}
		if diff := cmp.Diff(held[r.GetTypeUrl()], r.GetInitialResourceVersions()); diff != "" {
			t.Errorf("%s: initial_resource_versions (-held +sent):\n%s", r.GetTypeUrl(), diff)
		}
	}
	// ... so it was sent only what changed, and the removal.
	waitFor(t, "a response of every type", func() bool { _, resps, _ = srv2.recorded(); return len(resps) >= len(nodeTypes) })
	for _, r := range resps {
		var got []string
		for _, res := range r.GetResources() {
			got = append(got, res.GetName())
		}
		var wantSent, wantRemoved []string
		switch r.GetTypeUrl() {
		case listenerType:
			wantSent, wantRemoved = []string{"l1", "l3"}, []string{"l2"}
		case workloadType:
			wantSent = []string{"ns/pod2"}
		}
		if !cmp.Equal(slices.Sorted(slices.Values(got)), wantSent) || !cmp.Equal(r.GetRemovedResources(), wantRemoved) {
			t.Errorf("%s: sent %v removed %v, want %v and %v", r.GetTypeUrl(), got, r.GetRemovedResources(), wantSent, wantRemoved)
		}
	}
	// Apply never saw the state emptied: every state after the first
	// complete one holds every type's resources.
	synced := false
	for i, s := range c.applied.all() {
		if !synced {
			synced = s.Complete()
			continue
		}
		for _, typ := range nodeTypes {
			if s.Len(typ) == 0 {
				t.Errorf("applied state %d holds no %s", i, typeLabel(typ))
			}
		}
	}
	if len(serials) == 0 || serials[0] != renewed.Certificates[0].SerialNumber.String() || serials[0] == firstSerial {
		t.Errorf("client certificate serial on the new server %v, want the renewed %s (first was %s)",
			serials, renewed.Certificates[0].SerialNumber, firstSerial)
	}
	if nacks := srv2.nacks(); len(nacks) != 0 {
		t.Errorf("NACKs %q, want none", nacks)
	}
}

func TestRefusesAServerThatIsNotTheControlPlane(t *testing.T) {
	e := newEnv(t)
	other, err := certs.NodeID(certstest.TrustDomain, "node-b")
	if err != nil {
		t.Fatal(err)
	}
	impostor := e.start(t, serverConfig{id: other}, initialResources())
	c := e.newClient(t, impostor.addr)
	c.start(t)
	waitFor(t, "two failed attempts", func() bool { return c.metric(t, "weft_xds_client_reconnects_total") >= 2 })
	if c.Connected() || c.Synced() || len(c.applied.all()) != 0 {
		t.Errorf("Connected %v, Synced %v, %d states applied; want false, false, 0", c.Connected(), c.Synced(), len(c.applied.all()))
	}
	if reqs, _, _ := impostor.recorded(); len(reqs) != 0 {
		t.Errorf("the impostor got %d requests, want 0", len(reqs))
	}
}

func TestRunEndsWithItsContext(t *testing.T) {
	e := newEnv(t)
	srv := e.startServer(t, "", initialResources())

	t.Run("connected", func(t *testing.T) {
		c := e.newClient(t, srv.addr)
		c.start(t)
		waitFor(t, "sync", func() bool { return c.Connected() && c.Synced() })
		if err := c.Run(context.Background()); err == nil {
			t.Errorf("a second Run returned nil, want an error")
		}
		if err := c.stop(); err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
		if c.Connected() || !c.Synced() {
			t.Errorf("after Run: Connected %v, Synced %v; want false, true", c.Connected(), c.Synced())
		}
	})
	t.Run("waiting to reconnect", func(t *testing.T) {
		c := e.newClient(t, "127.0.0.1:1") // nothing listens there
		c.cfg.MinBackoff, c.cfg.MaxBackoff = time.Hour, time.Hour
		c.start(t)
		waitFor(t, "the first attempt to fail", func() bool { return c.logs.count(msgStreamEnded) == 1 })
		if err := c.stop(); err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	})
}

func TestIgnoresUnsubscribedType(t *testing.T) {
	e := newEnv(t)
	c := e.newClient(t, "127.0.0.1:1")
	if req := c.handle(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: typePrefix + "weft.xds.v1.Other", Nonce: "1"}); req != nil {
		t.Errorf("answered a response of a type not subscribed to: %v", req)
	}
}
