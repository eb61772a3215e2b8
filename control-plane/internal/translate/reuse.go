package translate

import (
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	xdsv1 "github.com/weftmesh/weft/api/xds/v1"
	"github.com/weftmesh/weft/control-plane/internal/model"
)

// Incremental translation (Mesh.Next).
//
// Model objects are never modified, and a source hands unchanged objects
// from one snapshot to the next as the same pointers (source.Source). So a
// resource whose inputs are the same objects as when it was built is the
// same resource, and Next takes it from the previous Mesh instead of
// building it again: the same message, which lets the xDS layer reuse its
// serialized form and version too. What each resource is made of:
//
//	Listener, weft Service     its Service
//	ClusterLoadAssignment      its Service, the Service's EndpointSlices, and
//	                           the pod and namespace of each endpoint
//	RouteConfiguration         its Service, the routes attached to the port,
//	                           the TrafficPolicies targeting the Service, and
//	                           every Service its backendRefs name
//	Cluster                    its Service, the TrafficPolicies targeting
//	                           it, and the retry budget routes give it
//	invalid backend cluster    its name and metadata
//	Workload                   everything but routes and TrafficPolicies
//
// plus the Options that shape resources (all but the trust bundle roots).
// A RouteConfiguration also records what building it did to the whole
// translation (invalid backends, retry budgets), so reusing it does the
// same. A list whose elements are all the previous list's is the previous
// list, so the xDS layer sees an unchanged type at once.

// sameInputs says which inputs of a translation are the same objects as
// the previous one's.
type sameInputs struct {
	opts                               bool // the Options that shape resources
	services, slices, pods, namespaces bool
	routes, policies, authz            bool
}

func compareInputs(prev *Mesh, s *model.Snapshot, opts Options) sameInputs {
	if prev == nil {
		return sameInputs{}
	}
	p, o := prev.snap, prev.opts
	if o.TrustDomain != opts.TrustDomain || o.ClusterDomain != opts.ClusterDomain || o.ConnectTimeout != opts.ConnectTimeout {
		return sameInputs{}
	}
	return sameInputs{
		opts:       true,
		services:   sameObjects(p.Services, s.Services),
		slices:     sameObjects(p.EndpointSlices, s.EndpointSlices),
		pods:       sameObjects(p.Pods, s.Pods),
		namespaces: sameObjects(p.Namespaces, s.Namespaces),
		routes:     sameObjects(p.Routes, s.Routes),
		policies:   sameObjects(p.TrafficPolicies, s.TrafficPolicies),
		authz:      sameObjects(p.AuthorizationPolicies, s.AuthorizationPolicies),
	}
}

// sameObjects reports whether a and b hold the same objects under the
// same keys.
func sameObjects[T any](a, b map[string]*T) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// portKey names a Service port across translations.
type portKey struct {
	svc  *model.Service
	port int32
	// consumer is the client namespace of a consumer RouteConfiguration;
	// empty for everything else.
	consumer string
}

func keyOf(pi *portInfo) portKey { return portKey{svc: pi.svc.svc, port: pi.port.Port} }

// built is what a Mesh keeps of its node-independent resources for the
// next one: each resource with the inputs it was made of.
type built struct {
	listeners map[portKey]*listenerv3.Listener
	services  map[*model.Service]*xdsv1.Service
	clas      map[portKey]*claBuilt
	routes    map[portKey]*routeBuilt
	clusters  map[portKey]*clusterBuilt
	invalid   map[string]*invalidBuilt
	lists     map[string][]types.Resource // the lists handed out, by type
}

func newBuilt() *built {
	return &built{
		listeners: map[portKey]*listenerv3.Listener{},
		services:  map[*model.Service]*xdsv1.Service{},
		clas:      map[portKey]*claBuilt{},
		routes:    map[portKey]*routeBuilt{},
		clusters:  map[portKey]*clusterBuilt{},
		invalid:   map[string]*invalidBuilt{},
		lists:     map[string][]types.Resource{},
	}
}

// claBuilt is a ClusterLoadAssignment and what it was made of.
type claBuilt struct {
	cla    *endpointv3.ClusterLoadAssignment
	slices []*model.EndpointSlice
	pods   []podInput
}

// podInput is the pod an endpoint names and its namespace (nil when
// absent).
type podInput struct {
	key string
	pod *model.Pod
	ns  *model.Namespace
}

// claInputs lists what the assignment of a Service port is made of.
func claInputs(ix *index, si *svcInfo) ([]*model.EndpointSlice, []podInput) {
	slices := ix.slicesBySvc[si.key]
	var pods []podInput
	for _, es := range slices {
		for i := range es.Endpoints {
			key := es.Endpoints[i].Pod
			if key == "" {
				continue
			}
			in := podInput{key: key, pod: ix.snap.Pods[key]}
			if in.pod != nil {
				in.ns = ix.snap.Namespaces[in.pod.Namespace]
			}
			pods = append(pods, in)
		}
	}
	return slices, pods
}

// current reports whether c's inputs are the same objects in ix.
func (c *claBuilt) current(ix *index, si *svcInfo) bool {
	if !slices.Equal(c.slices, ix.slicesBySvc[si.key]) {
		return false
	}
	for _, in := range c.pods {
		pod := ix.snap.Pods[in.key]
		if pod != in.pod || pod != nil && ix.snap.Namespaces[pod.Namespace] != in.ns {
			return false
		}
	}
	return true
}

// routeBuilt is a RouteConfiguration, what it was made of, and what
// building it recorded for the rest of the translation.
type routeBuilt struct {
	rc       *routev3.RouteConfiguration
	attached []*model.Route
	policies []policyTarget
	backends map[string]*model.Service // Service key -> the Service then (nil: none)
	invalid  []invalidBackend          // in the order recorded
	budgets  []routeBudget
}

type invalidBackend struct {
	cluster string
	meta    *xdsv1.ClusterMetadata
}

type routeBudget struct {
	cluster string
	budget  budget
}

func (r *routeBuilt) current(ix *index, attached []*model.Route, pi *portInfo) bool {
	if !slices.Equal(r.attached, attached) || !slices.Equal(r.policies, ix.policies[pi.svc.key]) {
		return false
	}
	for key, svc := range r.backends {
		si := ix.svcByKey[key]
		if si == nil && svc != nil || si != nil && si.svc != svc {
			return false
		}
	}
	return true
}

// clusterBuilt is a Cluster and what it was made of.
type clusterBuilt struct {
	c         *clusterv3.Cluster
	policies  []policyTarget
	budget    budget
	hasBudget bool
}

// invalidBuilt is the cluster and assignment of a backend that does not
// resolve.
type invalidBuilt struct {
	meta    *xdsv1.ClusterMetadata
	cluster *clusterv3.Cluster
	cla     *endpointv3.ClusterLoadAssignment
}

func (v *invalidBuilt) current(meta *xdsv1.ClusterMetadata) bool { return proto.Equal(v.meta, meta) }

// sameList returns prev when l holds the same messages in the same order,
// l otherwise.
func sameList(prev, l []types.Resource) []types.Resource {
	if prev != nil && slices.Equal(prev, l) {
		return prev
	}
	return l
}
