package xdsclient

import (
	"fmt"
	"maps"
	"strings"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Resource is one xDS resource as the client holds it.
type Resource struct {
	// Version is the server's version of the resource (opaque; for Weft's
	// control plane a hash of its content).
	Version string
	// Any is the resource, its type URL the type's. It was checked to
	// unmarshal into the type's Go message. Never nil; must not be
	// modified.
	Any *anypb.Any
}

// State is what the client holds: for each subscribed type, whether a
// response was ever accepted and the resources by name. It is immutable
// and safe to share; the zero State holds nothing.
type State struct{ s *state }

type state struct {
	order []string              // subscribed type URLs, in Config order
	types map[string]*typeState // by type URL; entries are never modified
}

type typeState struct {
	received  bool                // a response of this type was accepted
	resources map[string]Resource // by name; never modified
}

func newState(types []string) State {
	s := &state{order: types, types: make(map[string]*typeState, len(types))}
	for _, t := range types {
		s.types[t] = &typeState{resources: map[string]Resource{}}
	}
	return State{s}
}

func (s State) typ(typeURL string) *typeState {
	if s.s == nil {
		return nil
	}
	return s.s.types[typeURL]
}

// Types returns the subscribed type URLs.
func (s State) Types() []string {
	if s.s == nil {
		return nil
	}
	return append([]string(nil), s.s.order...)
}

// Received reports whether a response of typeURL was ever accepted, even
// one with no resources (the server has none of that type for this node).
func (s State) Received(typeURL string) bool {
	ts := s.typ(typeURL)
	return ts != nil && ts.received
}

// Complete reports whether every subscribed type was received.
func (s State) Complete() bool {
	if s.s == nil || len(s.s.order) == 0 {
		return false
	}
	for _, ts := range s.s.types {
		if !ts.received {
			return false
		}
	}
	return true
}

// Len returns how many resources of typeURL are held.
func (s State) Len(typeURL string) int {
	if ts := s.typ(typeURL); ts != nil {
		return len(ts.resources)
	}
	return 0
}

// Get returns the resource typeURL/name.
func (s State) Get(typeURL, name string) (Resource, bool) {
	if ts := s.typ(typeURL); ts != nil {
		r, ok := ts.resources[name]
		return r, ok
	}
	return Resource{}, false
}

// Resources returns the resources of typeURL by name, in a new map (the
// Anys are shared and must not be modified). It is empty, not nil, for a
// subscribed type with none.
func (s State) Resources(typeURL string) map[string]*anypb.Any {
	ts := s.typ(typeURL)
	if ts == nil {
		return nil
	}
	m := make(map[string]*anypb.Any, len(ts.resources))
	for name, r := range ts.resources {
		m[name] = r.Any
	}
	return m
}

// All returns Resources of every subscribed type, by type URL.
func (s State) All() map[string]map[string]*anypb.Any {
	if s.s == nil {
		return nil
	}
	m := make(map[string]map[string]*anypb.Any, len(s.s.order))
	for _, t := range s.s.order {
		m[t] = s.Resources(t)
	}
	return m
}

// Versions returns the version of each resource of typeURL held, by
// name: what a new stream sends as initial_resource_versions. Nil when
// none is held.
func (s State) Versions(typeURL string) map[string]string {
	ts := s.typ(typeURL)
	if ts == nil || len(ts.resources) == 0 {
		return nil
	}
	m := make(map[string]string, len(ts.resources))
	for name, r := range ts.resources {
		m[name] = r.Version
	}
	return m
}

// maxErrors bounds how many resource errors a rejection lists.
const maxErrors = 10

// update returns s with the delta response resp applied to resp's type:
// added and updated resources replace what was held, removed ones are
// dropped, and the type is marked received. mt is the type's Go message,
// which every resource must unmarshal into. It reports whether anything
// changed; on error, no part of resp is applied. resp's type must be one
// of s's.
//
// A resource with no body is a TTL heartbeat: what is held stays as it
// is. A name that is both updated and removed, or updated twice, rejects
// the response.
func (s State) update(resp *discoveryv3.DeltaDiscoveryResponse, mt protoreflect.MessageType) (State, bool, error) {
	typeURL := resp.GetTypeUrl()
	old := s.typ(typeURL)
	if old == nil {
		return s, false, fmt.Errorf("type %q is not subscribed", typeURL)
	}
	next := maps.Clone(old.resources)
	changed := !old.received
	var errs []string
	failed := 0
	fail := func(err error) {
		if failed++; failed <= maxErrors {
			errs = append(errs, err.Error())
		}
	}
	seen := make(map[string]bool, len(resp.GetResources()))
	for i, r := range resp.GetResources() {
		name := r.GetName()
		if name == "" {
			name = r.GetResourceName().GetName()
		}
		if name == "" {
			fail(fmt.Errorf("resource %d has no name", i))
			continue
		}
		if seen[name] {
			fail(fmt.Errorf("%q is sent twice", name))
			continue
		}
		seen[name] = true
		a := r.GetResource()
		if a == nil {
			continue // heartbeat
		}
		if a.GetTypeUrl() != typeURL {
			fail(fmt.Errorf("%q is a %s", name, a.GetTypeUrl()))
			continue
		}
		if err := proto.Unmarshal(a.GetValue(), mt.New().Interface()); err != nil {
			fail(fmt.Errorf("%q: %w", name, err))
			continue
		}
		next[name] = Resource{Version: r.GetVersion(), Any: a}
		changed = true
	}
	remove := func(name string) {
		if seen[name] {
			fail(fmt.Errorf("%q is both sent and removed", name))
			return
		}
		if _, ok := next[name]; ok {
			delete(next, name)
			changed = true
		}
	}
	for _, name := range resp.GetRemovedResources() {
		remove(name)
	}
	for _, rn := range resp.GetRemovedResourceNames() {
		remove(rn.GetName())
	}
	if failed > maxErrors {
		errs = append(errs, fmt.Sprintf("and %d more", failed-maxErrors))
	}
	if len(errs) > 0 {
		return s, false, fmt.Errorf("%s: %s", typeLabel(typeURL), strings.Join(errs, "; "))
	}
	if !changed {
		return s, false, nil
	}
	ns := &state{order: s.s.order, types: maps.Clone(s.s.types)}
	ns.types[typeURL] = &typeState{received: true, resources: next}
	return State{ns}, true, nil
}
