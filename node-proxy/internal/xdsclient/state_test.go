package xdsclient

import (
	"fmt"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
)

const (
	listenerType = typePrefix + "envoy.config.listener.v3.Listener"
	serviceType  = typePrefix + "weft.xds.v1.Service"
)

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func listener(t testing.TB, name, version string) *discoveryv3.Resource {
	return &discoveryv3.Resource{Name: name, Version: version, Resource: mustAny(t, &listenerv3.Listener{Name: name})}
}

// badAny is a Listener whose name (field 1, a proto3 string) is not UTF-8:
// it does not unmarshal.
func badAny(t testing.TB) *anypb.Any {
	b, err := proto.Marshal(wrapperspb.Bytes([]byte{0xff, 0xfe}))
	if err != nil {
		t.Fatal(err)
	}
	return &anypb.Any{TypeUrl: listenerType, Value: b}
}

func listenerResp(removed []string, rs ...*discoveryv3.Resource) *discoveryv3.DeltaDiscoveryResponse {
	return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: listenerType, Resources: rs, RemovedResources: removed}
}

func mtOf(t testing.TB, typeURL string) protoreflect.MessageType {
	mt, err := findType(typeURL)
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

func TestUpdate(t *testing.T) {
	lt := mtOf(t, listenerType)
	empty := newState([]string{listenerType, serviceType})
	base, _, err := empty.update(listenerResp(nil, listener(t, "a", "1"), listener(t, "b", "1")), lt)
	if err != nil {
		t.Fatal(err)
	}
	many := make([]*discoveryv3.Resource, 12)
	for i := range many {
		many[i] = &discoveryv3.Resource{Name: fmt.Sprint("bad", i), Resource: badAny(t)}
	}
	tests := []struct {
		name    string
		from    State
		resp    *discoveryv3.DeltaDiscoveryResponse
		want    map[string]string // name -> version held after
		changed bool
		err     string // substring; the state must stay as it was
	}{
		{name: "first response with nothing", from: empty, resp: listenerResp(nil), want: nil, changed: true},
		{name: "first response", from: empty, resp: listenerResp(nil, listener(t, "a", "1")), want: map[string]string{"a": "1"}, changed: true},
		{name: "update and remove", from: base, resp: listenerResp([]string{"b"}, listener(t, "a", "2"), listener(t, "c", "1")),
			want: map[string]string{"a": "2", "c": "1"}, changed: true},
		{name: "remove by resource name", from: base,
			resp: &discoveryv3.DeltaDiscoveryResponse{TypeUrl: listenerType, RemovedResourceNames: []*discoveryv3.ResourceName{{Name: "a"}}},
			want: map[string]string{"b": "1"}, changed: true},
		{name: "name from resource_name", from: base,
			resp: listenerResp(nil, &discoveryv3.Resource{ResourceName: &discoveryv3.ResourceName{Name: "c"}, Version: "1", Resource: mustAny(t, &listenerv3.Listener{Name: "c"})}),
			want: map[string]string{"a": "1", "b": "1", "c": "1"}, changed: true},
		{name: "remove what is not held", from: base, resp: listenerResp([]string{"zz"}), want: map[string]string{"a": "1", "b": "1"}},
		{name: "empty", from: base, resp: listenerResp(nil), want: map[string]string{"a": "1", "b": "1"}},
		{name: "heartbeat", from: base, resp: listenerResp(nil, &discoveryv3.Resource{Name: "a", Version: "1"}), want: map[string]string{"a": "1", "b": "1"}},
		{name: "does not unmarshal", from: base, resp: listenerResp(nil, listener(t, "c", "1"), &discoveryv3.Resource{Name: "a", Version: "2", Resource: badAny(t)}),
			err: `envoy.config.listener.v3.Listener: "a": `},
		{name: "another type", from: base, resp: listenerResp(nil, &discoveryv3.Resource{Name: "a", Resource: mustAny(t, &xdsv1.Service{Name: "a"})}),
			err: `"a" is a type.googleapis.com/weft.xds.v1.Service`},
		{name: "no name", from: base, resp: listenerResp(nil, &discoveryv3.Resource{Resource: mustAny(t, &listenerv3.Listener{})}), err: "resource 0 has no name"},
		{name: "twice", from: base, resp: listenerResp(nil, listener(t, "a", "2"), listener(t, "a", "3")), err: `"a" is sent twice`},
		{name: "sent and removed", from: base, resp: listenerResp([]string{"a"}, listener(t, "a", "2")), err: `"a" is both sent and removed`},
		{name: "errors are capped", from: base, resp: listenerResp(nil, many...), err: "; and 2 more"},
		{name: "not subscribed", from: base, resp: &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typePrefix + "weft.xds.v1.Workload"}, err: "not subscribed"},
		{name: "zero state", from: State{}, resp: listenerResp(nil), err: "not subscribed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.from.Versions(listenerType)
			got, changed, err := tt.from.update(tt.resp, lt)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				if changed || got.s != tt.from.s {
					t.Errorf("a rejected response changed the state")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.changed {
				t.Errorf("changed %v, want %v", changed, tt.changed)
			}
			if diff := cmp.Diff(tt.want, got.Versions(listenerType)); diff != "" {
				t.Errorf("held versions (-want +got):\n%s", diff)
			}
			if !got.Received(listenerType) || got.Received(serviceType) {
				t.Errorf("received listeners %v, services %v; want true, false", got.Received(listenerType), got.Received(serviceType))
			}
			if diff := cmp.Diff(before, tt.from.Versions(listenerType)); diff != "" {
				t.Errorf("update modified the state it started from (-before +after):\n%s", diff)
			}
		})
	}
}

func TestStateAccessors(t *testing.T) {
	var zero State
	if zero.Complete() || zero.Received(listenerType) || zero.Len(listenerType) != 0 || zero.All() != nil || zero.Types() != nil {
		t.Errorf("the zero State is not empty")
	}
	if _, ok := zero.Get(listenerType, "a"); ok {
		t.Errorf("the zero State holds a resource")
	}
	s := newState([]string{listenerType, serviceType})
	if s.Complete() {
		t.Errorf("Complete before anything was received")
	}
	s, _, err := s.update(listenerResp(nil, listener(t, "a", "1")), mtOf(t, listenerType))
	if err != nil {
		t.Fatal(err)
	}
	if s.Complete() {
		t.Errorf("Complete with services not received")
	}
	s, _, err = s.update(&discoveryv3.DeltaDiscoveryResponse{TypeUrl: serviceType}, mtOf(t, serviceType))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Complete() {
		t.Errorf("not Complete after every type was received")
	}
	want := map[string]map[string]*anypb.Any{
		listenerType: {"a": mustAny(t, &listenerv3.Listener{Name: "a"})},
		serviceType:  {},
	}
	if diff := cmp.Diff(want, s.All(), protocmp.Transform()); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	if r, ok := s.Get(listenerType, "a"); !ok || r.Version != "1" {
		t.Errorf("Get a: %+v, %v; want version 1", r, ok)
	}
	if s.Len(listenerType) != 1 || s.Len(serviceType) != 0 {
		t.Errorf("Len %d, %d; want 1, 0", s.Len(listenerType), s.Len(serviceType))
	}
	// Callers own the maps they are given.
	s.Resources(listenerType)["x"] = nil
	if s.Len(listenerType) != 1 {
		t.Errorf("modifying Resources' map changed the state")
	}
	if diff := cmp.Diff([]string{listenerType, serviceType}, s.Types()); diff != "" {
		t.Errorf("Types (-want +got):\n%s", diff)
	}
}
