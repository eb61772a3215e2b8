package translate

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// wire is every resource, deterministically marshalled, in order.
func wire(t *testing.T, res Resources) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, typ := range append(append([]string(nil), EnvoyTypes...), WeftTypes...) {
		b.WriteString(typ + "\n")
		for _, r := range res[typ] {
			m, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(m)
		}
	}
	return b.Bytes()
}

// Equal snapshots give identical bytes (map iteration order is random in
// Go, so several runs would catch an order that leaks through), and Node
// is NewMesh(...).Node.
func TestDeterministic(t *testing.T) {
	s := synthSnapshot(400, 10, 40)
	first := wire(t, Node(s, "node-3", Options{}))
	for i := 0; i < 3; i++ {
		if got := wire(t, Node(s, "node-3", Options{})); !bytes.Equal(got, first) {
			t.Fatalf("run %d: output differs from the first run", i)
		}
	}
	if got := wire(t, NewMesh(s, Options{}).Node("node-3")); !bytes.Equal(got, first) {
		t.Fatalf("Mesh.Node differs from Node")
	}
}

// Appending to one node's lists must not show up in another's.
func TestNodeResultsAreIndependent(t *testing.T) {
	m := NewMesh(synthSnapshot(40, 2, 4), Options{})
	a := m.Node("node-0")
	a[ServiceType] = append(a[ServiceType], &xdsv1.Service{Name: "zz/injected"})
	b := m.Node("node-1")
	for _, r := range b[ServiceType] {
		if r.(*xdsv1.Service).GetName() == "zz/injected" {
			t.Fatal("a resource appended to node-0's result appeared in node-1's")
		}
	}
}

func TestProtocolOf(t *testing.T) {
	tests := []struct {
		name, appProtocol string
		want              xdsv1.Protocol
	}{
		{"web", "http", xdsv1.Protocol_PROTOCOL_HTTP},
		{"web", "HTTP2", xdsv1.Protocol_PROTOCOL_HTTP2},
		{"web", "kubernetes.io/h2c", xdsv1.Protocol_PROTOCOL_HTTP2},
		{"web", "grpc", xdsv1.Protocol_PROTOCOL_GRPC},
		{"web", "tcp", xdsv1.Protocol_PROTOCOL_TCP},
		{"http", "grpc", xdsv1.Protocol_PROTOCOL_GRPC}, // appProtocol wins
		{"grpc-api", "", xdsv1.Protocol_PROTOCOL_GRPC},
		{"http", "", xdsv1.Protocol_PROTOCOL_HTTP},
		{"h2c-x", "", xdsv1.Protocol_PROTOCOL_HTTP2},
		{"tcp-db", "", xdsv1.Protocol_PROTOCOL_TCP},
		{"https", "", xdsv1.Protocol_PROTOCOL_UNSPECIFIED},
		{"web", "kubernetes.io/ws", xdsv1.Protocol_PROTOCOL_UNSPECIFIED},
		{"", "", xdsv1.Protocol_PROTOCOL_UNSPECIFIED},
	}
	for _, tc := range tests {
		if got := protocolOf(model.ServicePort{Name: tc.name, AppProtocol: tc.appProtocol}); got != tc.want {
			t.Errorf("protocolOf(name %q, appProtocol %q): got %v, want %v", tc.name, tc.appProtocol, got, tc.want)
		}
	}
}

func TestNormalizePrefix(t *testing.T) {
	for in, want := range map[string]string{"": "/", "/": "/", "//": "/", "/api": "/api", "/api/": "/api", "/a/b//": "/a/b"} {
		if got := normalizePrefix(in); got != want {
			t.Errorf("normalizePrefix(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestRetryPolicy(t *testing.T) {
	if p := retryPolicy(&model.RetryPolicy{Attempts: 0}, nil, 0); p != nil {
		t.Errorf("zero attempts: got %v, want no policy", p)
	}
	if p := retryPolicy(nil, &model.RouteRetry{Codes: []int32{503}}, 0); p != nil {
		t.Errorf("rule retry without attempts and no policy: got %v, want no policy", p)
	}
	p := retryPolicy(
		&model.RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}, PerTryTimeout: time.Second, BackoffBase: 10 * time.Millisecond},
		&model.RouteRetry{Attempts: 4, Codes: []int32{503}},
		300*time.Millisecond)
	if got, want := p.GetRetryOn(), "5xx,retriable-status-codes"; got != want {
		t.Errorf("retry_on: got %q, want %q", got, want)
	}
	if got := p.GetNumRetries().GetValue(); got != 4 {
		t.Errorf("num_retries: got %d, want 4 (the rule's)", got)
	}
	if got := p.GetPerTryTimeout().AsDuration(); got != 300*time.Millisecond {
		t.Errorf("per_try_timeout: got %v, want the rule's backendRequest 300ms", got)
	}
	if got := p.GetRetryBackOff().GetMaxInterval().AsDuration(); got != 100*time.Millisecond {
		t.Errorf("max backoff: got %v, want 10 x base = 100ms", got)
	}
}
