package xds

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func TestSetCacheSharesSetsBetweenNodes(t *testing.T) {
	shared := []types.Resource{&listenerv3.Listener{Name: "a"}, &listenerv3.Listener{Name: "b"}}
	c := newSetCache()
	n1, err := newSnapshot(map[string][]types.Resource{resourcev3.ListenerType: shared[:2:2]}, c)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := newSnapshot(map[string][]types.Resource{resourcev3.ListenerType: shared[:2:2]}, c)
	if err != nil {
		t.Fatal(err)
	}
	if n1.sets[resourcev3.ListenerType] != n2.sets[resourcev3.ListenerType] {
		t.Error("two nodes given the same slice got different sets")
	}
	// The same content in another slice is a different key, with the same
	// version: the cache is only a shortcut.
	other := []types.Resource{&listenerv3.Listener{Name: "a"}, &listenerv3.Listener{Name: "b"}}
	n3, err := newSnapshot(map[string][]types.Resource{resourcev3.ListenerType: other}, c)
	if err != nil {
		t.Fatal(err)
	}
	if n3.sets[resourcev3.ListenerType] == n1.sets[resourcev3.ListenerType] || n3.Version() != n1.Version() {
		t.Error("another slice with equal content must get its own set and the same version")
	}
	// An entry survives one rotation if used, and is dropped after two unused.
	c.rotate()
	n4, _ := newSnapshot(map[string][]types.Resource{resourcev3.ListenerType: shared}, c)
	if n4.sets[resourcev3.ListenerType] != n1.sets[resourcev3.ListenerType] {
		t.Error("entry lost after one rotation")
	}
	c.rotate()
	c.rotate()
	n5, _ := newSnapshot(map[string][]types.Resource{resourcev3.ListenerType: shared}, c)
	if n5.sets[resourcev3.ListenerType] == n1.sets[resourcev3.ListenerType] {
		t.Error("entry kept after two unused rotations")
	}
	// Consistency results are cached per combination of sets.
	if err := c.consistent(n1); err != nil {
		t.Fatal(err)
	}
}

// A resource handed over again, in a new list, is not encoded again; a new
// message is, even with a name seen before.
func TestSetCacheReusesEncodedResources(t *testing.T) {
	a, b := &listenerv3.Listener{Name: "a"}, &listenerv3.Listener{Name: "b"}
	c := newSetCache()
	first, err := c.set(resourcev3.ListenerType, []types.Resource{a, b})
	if err != nil {
		t.Fatal(err)
	}
	c.rotate()
	b2 := &listenerv3.Listener{Name: "b", StatPrefix: "changed"}
	next, err := c.set(resourcev3.ListenerType, []types.Resource{a, b2})
	if err != nil {
		t.Fatal(err)
	}
	if next.wire["a"] != first.wire["a"] {
		t.Error("a: encoded again, want the earlier encoding")
	}
	if next.wire["b"] == first.wire["b"] || next.versions["b"] == first.versions["b"] {
		t.Error("b: a new message kept the old encoding or version")
	}
}
