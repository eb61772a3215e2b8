package translate

import (
	"bytes"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// Type URLs of Weft's own resources (api/xds/v1). Envoy's are the
// constants of go-control-plane's pkg/resource/v3.
const (
	WorkloadType    = resource.APITypePrefix + "weft.xds.v1.Workload"
	ServiceType     = resource.APITypePrefix + "weft.xds.v1.Service"
	TrustBundleType = resource.APITypePrefix + "weft.xds.v1.TrustBundle"
)

// EnvoyTypes are the Envoy type URLs Node produces, in dependency order.
var EnvoyTypes = []resource.Type{
	resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType,
}

// WeftTypes are Weft's type URLs Node produces.
var WeftTypes = []resource.Type{WorkloadType, ServiceType, TrustBundleType}

// Defaults applied to zero Options fields.
const (
	DefaultTrustDomain    = "cluster.local"
	DefaultClusterDomain  = "cluster.local"
	DefaultConnectTimeout = 5 * time.Second
)

// Options are the inputs of a translation that do not come from the
// cluster objects.
type Options struct {
	// TrustDomain of the SPIFFE IDs; "" means DefaultTrustDomain.
	TrustDomain string
	// ClusterDomain is the DNS suffix of Service names
	// (<svc>.<ns>.svc.<ClusterDomain>); "" means DefaultClusterDomain.
	ClusterDomain string
	// TrustBundleRoots are the DER root certificates of the trust bundle.
	// When empty no TrustBundle resource is produced, so that a proxy keeps
	// the bundle it already has.
	TrustBundleRoots [][]byte
	// ConnectTimeout bounds connecting to an endpoint (Cluster
	// connect_timeout); 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.ClusterDomain == "" {
		o.ClusterDomain = DefaultClusterDomain
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	return o
}

// Resources are one node's xDS resources keyed by type URL, each list
// sorted by resource name. Every Envoy type and the Workload and Service
// types are always present, possibly with an empty list: "none", so a
// state-of-the-world server still answers and a client drops what it had.
// TrustBundleType is present only when Options has roots. The messages may
// be shared with other nodes' Resources: treat them as read-only.
type Resources map[resource.Type][]types.Resource

// Envoy returns the Envoy-typed part, the map go-control-plane's
// cache.NewSnapshot accepts (it refuses type URLs it does not know).
func (r Resources) Envoy() map[resource.Type][]types.Resource {
	out := make(map[resource.Type][]types.Resource, len(EnvoyTypes))
	for _, t := range EnvoyTypes {
		if l, ok := r[t]; ok {
			out[t] = l
		}
	}
	return out
}

// Weft returns the part typed with Weft's own messages.
func (r Resources) Weft() map[resource.Type][]types.Resource {
	out := make(map[resource.Type][]types.Resource, len(WeftTypes))
	for _, t := range WeftTypes {
		if l, ok := r[t]; ok {
			out[t] = l
		}
	}
	return out
}

// Node translates the snapshot into the resources node's proxy receives.
// It is NewMesh(s, opts).Node(node); to translate for many nodes, build
// the Mesh once.
func Node(s *model.Snapshot, node string, opts Options) Resources {
	return NewMesh(s, opts).Node(node)
}

// Mesh is the node-independent part of a translation (every Service's
// listeners, routes, clusters and endpoints, the trust bundle), computed
// once per snapshot, plus the indexes that make Node cheap. A Mesh is
// immutable and safe for concurrent use.
type Mesh struct {
	snap   *model.Snapshot
	opts   Options
	ix     *index
	shared Resources
	built  *built // the shared resources and their inputs, for Next
	// podsByNode lists pod keys per node, sorted.
	podsByNode map[string][]string
	workloads  *workloadCache
}

// workloadCache holds each node's Workloads once translated. Meshes whose
// Workloads have the same inputs share one.
type workloadCache struct {
	mu     sync.Mutex // guards the field below
	byNode map[string][]types.Resource
}

// NewMesh translates everything that does not depend on the node.
func NewMesh(s *model.Snapshot, opts Options) *Mesh {
	return (*Mesh)(nil).Next(s, opts)
}

// Next translates s like NewMesh, but takes from m, the translation of an
// earlier snapshot, every resource whose inputs are the same objects (see
// reuse.go): a change of one route rebuilds one RouteConfiguration. m may
// be nil. The result does not refer to m, which is left unchanged.
func (m *Mesh) Next(s *model.Snapshot, opts Options) *Mesh {
	if s == nil {
		s = model.NewSnapshot()
	}
	opts = opts.withDefaults()
	same := compareInputs(m, s, opts)
	var prevIndex *index
	var prevBuilt *built
	if same.opts {
		prevIndex, prevBuilt = m.ix, m.built
	}
	ix := newIndex(s, opts, prevIndex, same)
	next := &Mesh{snap: s, opts: opts, ix: ix}
	if same.pods {
		next.podsByNode = m.podsByNode
	} else {
		next.podsByNode = map[string][]string{}
		for _, key := range sortedKeys(s.Pods) {
			p := s.Pods[key]
			if p.NodeName != "" {
				next.podsByNode[p.NodeName] = append(next.podsByNode[p.NodeName], key)
			}
		}
	}
	if same.opts && same.services && same.slices && same.pods && same.namespaces && same.authz {
		next.workloads = m.workloads
	} else {
		next.workloads = &workloadCache{byNode: map[string][]types.Resource{}}
	}
	var prevBundle []types.Resource
	if m != nil && m.opts.TrustDomain == opts.TrustDomain && slices.EqualFunc(m.opts.TrustBundleRoots, opts.TrustBundleRoots, bytes.Equal) {
		prevBundle = m.shared[TrustBundleType]
	}
	next.shared, next.built = buildShared(ix, opts, prevBuilt, prevBundle)
	return next
}

// Node returns what node's proxy receives: the shared resources plus a
// Workload for each enrolled pod scheduled on node.
func (m *Mesh) Node(node string) Resources {
	out := make(Resources, len(m.shared)+1)
	for t, l := range m.shared {
		out[t] = l[:len(l):len(l)] // appending to it must not touch m.shared
	}
	wls := m.nodeWorkloads(node)
	out[WorkloadType] = wls[:len(wls):len(wls)]
	return out
}

// nodeWorkloads returns node's Workloads, translating them on first use.
func (m *Mesh) nodeWorkloads(node string) []types.Resource {
	c := m.workloads
	c.mu.Lock()
	wls, ok := c.byNode[node]
	c.mu.Unlock()
	if ok {
		return wls
	}
	wls = []types.Resource{}
	for _, key := range m.podsByNode[node] {
		if w := workload(m.ix, m.snap.Pods[key], m.opts); w != nil {
			wls = append(wls, w)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.byNode[node]; ok { // translated meanwhile: hand out one list only
		return prev
	}
	c.byNode[node] = wls
	return wls
}

// buildShared builds the node-independent resources, reusing what prev
// (nil: nothing) built from the same inputs, and the trust bundle list
// bundle when not nil.
func buildShared(ix *index, opts Options, prev *built, bundle []types.Resource) (Resources, *built) {
	out := Resources{}
	b := newOutboundBuilder(ix, opts, prev)
	b.build()
	add := func(t resource.Type, l []types.Resource) {
		if l == nil {
			l = []types.Resource{}
		}
		out[t] = l
	}
	add(resource.ListenerType, b.listeners)
	add(resource.RouteType, b.routes)
	add(resource.ClusterType, b.clusters)
	add(resource.EndpointType, b.endpoints)
	add(ServiceType, b.services)
	if len(opts.TrustBundleRoots) > 0 {
		if bundle == nil {
			roots := make([][]byte, len(opts.TrustBundleRoots))
			copy(roots, opts.TrustBundleRoots)
			bundle = []types.Resource{&xdsv1.TrustBundle{Name: opts.TrustDomain, TrustDomain: opts.TrustDomain, Roots: roots}}
		}
		out[TrustBundleType] = bundle
	}
	return out, b.next
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
