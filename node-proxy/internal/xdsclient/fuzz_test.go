package xdsclient

import (
	"io"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

// FuzzHandle feeds arbitrary responses to a client: it must never panic,
// must answer every response of a subscribed type with its nonce, and
// must only ever hold named resources of the right type.
func FuzzHandle(f *testing.F) {
	seed := func(r *discoveryv3.DeltaDiscoveryResponse) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(255), b)
	}
	seed(listenerResp([]string{"b"}, listener(f, "a", "1")))
	seed(listenerResp(nil, &discoveryv3.Resource{Name: "a", Resource: badAny(f)}))
	seed(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: serviceType, Nonce: "n",
		Resources:            []*discoveryv3.Resource{{Name: "ns/s", Resource: mustAny(f, &xdsv1.Service{Name: "ns/s"})}, {Name: "x"}},
		RemovedResourceNames: []*discoveryv3.ResourceName{{Name: "ns/t"}}})
	seed(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: listenerType,
		Resources: []*discoveryv3.Resource{{Name: "a", Resource: &anypb.Any{TypeUrl: listenerType, Value: []byte{0x0a}}}}})
	f.Add(uint8(0), []byte{0x12, 0x02, 0x0a, 0x00})
	e := newEnv(f)
	e.logs = io.Discard

	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		var resp discoveryv3.DeltaDiscoveryResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		if int(typ) < len(nodeTypes) {
			resp.TypeUrl = nodeTypes[typ]
		}
		c := e.newClient(t, "127.0.0.1:1")
		req := c.handle(&resp)
		if _, subscribed := c.types[resp.GetTypeUrl()]; subscribed != (req != nil) {
			t.Fatalf("answered %v to a response of type %q", req, resp.GetTypeUrl())
		}
		if req != nil && (req.GetResponseNonce() != resp.GetNonce() || req.GetTypeUrl() != resp.GetTypeUrl()) {
			t.Fatalf("answer %v does not match the response", req)
		}
		s := c.State()
		for _, typeURL := range s.Types() {
			for name, a := range s.Resources(typeURL) {
				if name == "" || a == nil || a.GetTypeUrl() != typeURL {
					t.Fatalf("holds %s %q = %v", typeURL, name, a)
				}
			}
		}
		if req.GetErrorDetail() == nil && resp.GetTypeUrl() == listenerType {
			for name, a := range s.Resources(listenerType) {
				if err := a.UnmarshalTo(&listenerv3.Listener{}); err != nil {
					t.Fatalf("accepted listener %q that does not unmarshal: %v", name, err)
				}
			}
		}
	})
}
