package xds

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// waitSync polls the server's sync state of node until ok accepts it.
func (e *env) waitSync(node, what string, ok func(NodeSync) bool) NodeSync {
	e.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		n, found := e.srv.Sync()[node]
		if found && ok(n) {
			return n
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("node %s never %s; last state %+v (found %v)", node, what, n, found)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The sync state follows a delta stream through a response awaiting its
// answer (STALE), an ACK (SYNCED), a NACK (NACKED, with the reason), and
// the next ACK; /debug/config lists it.
func TestSyncDelta(t *testing.T) {
	m := newModel(wlA)
	e := start(t, m)
	r := e.rawDelta("node-a")
	r.send(&discoverygrpc.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "node-a"}, TypeUrl: resourcev3.EndpointType})
	first := r.next(resourcev3.EndpointType)
	typeOf := func(n NodeSync) *TypeSync {
		if len(n.Streams) != 1 {
			return nil
		}
		return n.Streams[0].Types[resourcev3.EndpointType]
	}
	n := e.waitSync("node-a", "sent the first response", func(n NodeSync) bool { return typeOf(n) != nil })
	if got := n.Status(); got != "STALE" {
		t.Errorf("awaiting the answer: status %s, want STALE", got)
	}
	if ts := typeOf(n); ts.Sent != first.GetSystemVersionInfo() || ts.Acked != "" {
		t.Errorf("before the answer: %+v, want sent %s and nothing acked", ts, first.GetSystemVersionInfo())
	}
	if n.Streams[0].Protocol != protocolDelta || n.Snapshot == "" {
		t.Errorf("stream %+v, snapshot %q: want delta and a snapshot version", n.Streams[0], n.Snapshot)
	}

	r.ack(first)
	n = e.waitSync("node-a", "synced", func(n NodeSync) bool { return n.Status() == "SYNCED" })
	if ts := typeOf(n); ts.Acked != first.GetSystemVersionInfo() {
		t.Errorf("after the ACK: acked %q, want %q", ts.Acked, first.GetSystemVersionInfo())
	}

	e.change("node-a", func() { m.set(2, false) })
	second := r.next(resourcev3.EndpointType)
	r.send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.EndpointType, ResponseNonce: second.GetNonce(),
		ErrorDetail: &status.Status{Code: 3, Message: "bad endpoint"}})
	n = e.waitSync("node-a", "nacked", func(n NodeSync) bool { return n.Status() == "NACKED" })
	if ts := typeOf(n); ts.Nacked != second.GetSystemVersionInfo() || ts.NackErr != "bad endpoint" || ts.Acked != first.GetSystemVersionInfo() {
		t.Errorf("after the NACK: %+v, want nacked %s (bad endpoint), acked still %s", ts, second.GetSystemVersionInfo(), first.GetSystemVersionInfo())
	}

	rec := httptest.NewRecorder()
	e.srv.DebugHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/debug/config", nil))
	var body struct {
		Connected []string
		Nodes     map[string]struct{ Status string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("/debug/config: %v\n%s", err, rec.Body)
	}
	if len(body.Connected) != 1 || body.Nodes["node-a"].Status != "NACKED" {
		t.Errorf("/debug/config = %s, want node-a connected and NACKED", rec.Body)
	}

	e.change("node-a", func() { m.set(3, false) })
	third := r.next(resourcev3.EndpointType)
	r.ack(third)
	n = e.waitSync("node-a", "synced again", func(n NodeSync) bool { return n.Status() == "SYNCED" })
	if ts := typeOf(n); ts.Acked != third.GetSystemVersionInfo() || ts.Nacked != "" || ts.NackErr != "" {
		t.Errorf("after the next ACK: %+v, want acked %s and the NACK cleared", ts, third.GetSystemVersionInfo())
	}
}

// A state-of-the-world stream is tracked too.
func TestSyncSotW(t *testing.T) {
	e := start(t, newModel(wlA))
	c := openSotW(t, e.dial(e.nodeSVID("node-a")), "node-a", resourcev3.ClusterType)
	resp, err := c.recv() // ACKs it
	if err != nil {
		t.Fatal(err)
	}
	n := e.waitSync("node-a", "synced", func(n NodeSync) bool { return n.Status() == "SYNCED" && len(n.Streams) == 1 })
	ts := n.Streams[0].Types[resourcev3.ClusterType]
	if n.Streams[0].Protocol != protocolSotW || ts == nil || ts.Acked != resp.GetVersionInfo() {
		t.Errorf("SotW sync %+v (cluster type %+v), want acked %s", n, ts, resp.GetVersionInfo())
	}
}
