package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// typePrefix starts every type URL this server accepts.
const typePrefix = "type.googleapis.com/"

// Snapshot is one node's complete, immutable set of resources, keyed by
// type URL and then by resource name. Unlike go-control-plane's
// cache.Snapshot, which only knows Envoy's types, it carries any protobuf
// message under its own type URL, so Weft's types travel next to Envoy's.
//
// It implements cachev3.ResourceSnapshot: the snapshot cache and both
// protocol servers only ever ask it by type URL (GetVersion,
// GetResources(AndTTL), GetVersionMap) and put the resource bytes into an
// Any with the *requested* type URL, so nothing there depends on the
// type being one Envoy defines.
type Snapshot struct {
	version string
	sets    map[string]*resourceSet
}

// resourceSet is the resources of one type. It is immutable once built and
// shared by the snapshots of every node that has the same resources.
type resourceSet struct {
	version  string                           // hash over names and per-resource versions
	items    map[string]types.ResourceWithTTL // by name
	versions map[string]string                // per-resource content hash, for delta
	plain    map[string]types.Resource        // items without TTL, for GetResources; read-only
	// wire is each resource as a delta response carries it: name, version
	// and the serialized message in an Any of the set's type URL. Delta
	// streams send these shared messages instead of marshalling per stream.
	wire map[string]*discoverygrpc.Resource
}

// noResources is the set of a type a snapshot does not have.
var noResources = &resourceSet{version: emptyVersion}

var _ cachev3.ResourceSnapshot = (*Snapshot)(nil)

// emptyVersion is the version of a type that has no resources. Types a
// snapshot does not mention have it too, so that a state-of-the-world
// client asking for one gets an (empty) answer rather than silence.
var emptyVersion = hashVersion(nil)

// NewSnapshot builds a snapshot from resources keyed by type URL. Every
// resource must be of the message type its type URL names and have a
// non-empty name unique within its type: ClusterLoadAssignment's
// cluster_name, otherwise the message's "name" field. It does not check
// references between resources; see Consistent.
func NewSnapshot(resources map[string][]types.Resource) (*Snapshot, error) {
	return newSnapshot(resources, nil)
}

// newSnapshot is NewSnapshot with a cache of sets shared between nodes
// (nil means none).
func newSnapshot(resources map[string][]types.Resource, cache *setCache) (*Snapshot, error) {
	s := &Snapshot{sets: make(map[string]*resourceSet, len(resources))}
	var errs []error
	for _, typeURL := range slices.Sorted(maps.Keys(resources)) {
		set, err := cache.set(typeURL, resources[typeURL])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.sets[typeURL] = set
	}
	if len(errs) > 0 {
		return nil, &InvalidError{Errs: errs}
	}
	s.version = s.computeVersion()
	return s, nil
}

// InvalidError lists why resources could not form a snapshot at all.
type InvalidError struct{ Errs []error }

func (e *InvalidError) Error() string { return "invalid resources: " + errors.Join(e.Errs...).Error() }

func (e *InvalidError) Unwrap() []error { return e.Errs }

// encoded is a resource's serialized form and version.
type encoded struct {
	version string
	wire    *discoverygrpc.Resource
}

// newResourceSet builds the set of list. Resources that cache (nil: none)
// has already encoded are not encoded again.
func newResourceSet(typeURL string, list []types.Resource, cache *setCache) (*resourceSet, error) {
	msgName, ok := strings.CutPrefix(typeURL, typePrefix)
	if !ok || msgName == "" {
		return nil, fmt.Errorf("type URL %q does not start with %s", typeURL, typePrefix)
	}
	set := &resourceSet{
		items:    make(map[string]types.ResourceWithTTL, len(list)),
		versions: make(map[string]string, len(list)),
		plain:    make(map[string]types.Resource, len(list)),
		wire:     make(map[string]*discoverygrpc.Resource, len(list)),
	}
	known := cache.encodedOf(list)
	var fresh map[types.Resource]encoded
	for i, r := range list {
		if r == nil || !r.ProtoReflect().IsValid() {
			return nil, fmt.Errorf("%s: resource %d is nil", msgName, i)
		}
		if got := string(r.ProtoReflect().Descriptor().FullName()); got != msgName {
			return nil, fmt.Errorf("%s: resource %d is a %s", msgName, i, got)
		}
		name := ResourceName(r)
		if name == "" {
			return nil, fmt.Errorf("%s: resource %d has no name", msgName, i)
		}
		if _, dup := set.items[name]; dup {
			return nil, fmt.Errorf("%s: two resources are named %q", msgName, name)
		}
		e, ok := known[i]
		if !ok || e.wire.GetResource().GetTypeUrl() != typeURL {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", msgName, name, err)
			}
			version := hashVersion([][]byte{b})
			e = encoded{version, &discoverygrpc.Resource{Name: name, Version: version, Resource: &anypb.Any{TypeUrl: typeURL, Value: b}}}
			if fresh == nil {
				fresh = make(map[types.Resource]encoded)
			}
			fresh[r] = e
		}
		set.items[name] = types.ResourceWithTTL{Resource: r}
		set.plain[name] = r
		set.versions[name] = e.version
		set.wire[name] = e.wire
	}
	cache.addEncoded(fresh)
	set.version = hashNamed(set.versions)
	return set, nil
}

// ResourceName is the xDS name of a resource: the cluster_name of a
// ClusterLoadAssignment, otherwise the value of the message's string field
// "name" ("" if it has none). It works for generated and dynamic messages
// alike, so Weft's own types need no registration here.
func ResourceName(r types.Resource) string {
	if cla, ok := r.(*endpointv3.ClusterLoadAssignment); ok {
		return cla.GetClusterName()
	}
	if n, ok := r.(types.ResourceWithName); ok {
		return n.GetName()
	}
	m := r.ProtoReflect()
	f := m.Descriptor().Fields().ByName("name")
	if f == nil || f.Kind() != protoreflect.StringKind || f.Cardinality() == protoreflect.Repeated {
		return ""
	}
	return m.Get(f).String()
}

// Version identifies the whole snapshot: equal versions mean equal
// content, so an unchanged node is not pushed again.
func (s *Snapshot) Version() string { return s.version }

// GetVersion is the version of one type: a hash of its resources' names
// and contents, so a type whose resources did not change keeps its
// version and state-of-the-world clients are not sent it again.
func (s *Snapshot) GetVersion(typeURL string) string {
	if set, ok := s.sets[typeURL]; ok {
		return set.version
	}
	return emptyVersion
}

// GetResourcesAndTTL returns the resources of a type by name. The map is
// shared and must not be modified.
func (s *Snapshot) GetResourcesAndTTL(typeURL string) map[string]types.ResourceWithTTL {
	if set, ok := s.sets[typeURL]; ok {
		return set.items
	}
	return nil
}

// GetResources returns the resources of a type by name. The map is shared
// by every snapshot holding the same set (go-control-plane only reads it);
// it must not be modified.
func (s *Snapshot) GetResources(typeURL string) map[string]types.Resource {
	set, ok := s.sets[typeURL]
	if !ok {
		return nil
	}
	return set.plain
}

// ConstructVersionMap does nothing: per-resource versions are computed
// when the snapshot is built, and the snapshot never changes.
func (s *Snapshot) ConstructVersionMap() error { return nil }

// GetVersionMap returns the content hash of every resource of a type, by
// name; delta clients are sent exactly the resources whose hash changed.
// The map is shared and must not be modified.
func (s *Snapshot) GetVersionMap(typeURL string) map[string]string {
	if set, ok := s.sets[typeURL]; ok {
		return set.versions
	}
	return nil
}

func (s *Snapshot) computeVersion() string {
	perType := make(map[string]string, len(s.sets))
	for typeURL, set := range s.sets {
		if len(set.items) > 0 { // an empty type is the same as an absent one
			perType[typeURL] = set.version
		}
	}
	return hashNamed(perType)
}

// hashNamed hashes name=value pairs in name order.
func hashNamed(m map[string]string) string {
	parts := make([][]byte, 0, 2*len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, []byte(k), []byte(m[k]))
	}
	return hashVersion(parts)
}

// hashVersion returns a short hex digest of length-prefixed parts.
func hashVersion(parts [][]byte) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:10])
}
