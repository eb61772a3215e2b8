// Package translate turns the mesh model into the xDS resources of one
// node: a pure function of a model.Snapshot, with no I/O and no globals,
// whose output is sorted and named stably so that equal inputs give equal
// resources.
//
//	res := translate.Node(snapshot, "node-a", translate.Options{TrustBundleRoots: roots})
//	envoyRes := res.Envoy() // for go-control-plane's cache.NewSnapshot
//
// For many nodes, build the node-independent part once with NewMesh and
// call (*Mesh).Node per node. For the next snapshot, (*Mesh).Next
// translates again reusing every resource whose inputs are the same model
// objects (reuse.go), so a small change costs a small translation and
// unchanged resources stay the same messages.
//
// # What a node receives
//
//   - A weft.xds.v1.Workload for every enrolled pod scheduled on the node
//     (model.EnrollmentOf), with its identity, ports, Services, inbound mode
//     and compiled AuthorizationPolicies.
//   - Every Service of the mesh (all namespaces, enrolled or not; not
//     ExternalName): a weft.xds.v1.Service, and per TCP port a Listener,
//     a RouteConfiguration, a Cluster and a ClusterLoadAssignment. Sending
//     all of them, rather than computing what each pod may call, keeps the
//     translation cheap and lets a newly enrolled pod call anything at once;
//     the shared part is the same for every node.
//   - The empty "invalid|..." clusters routes point at for backends that
//     do not resolve.
//   - The weft.xds.v1.TrustBundle, when Options has roots.
//
// # Names
//
//	Listener, RouteConfiguration  <svc>.<ns>.svc.<domain>:<port>
//	Cluster, ClusterLoadAssignment outbound|<port>||<svc>.<ns>.svc.<domain>
//	invalid backend cluster        invalid|<port>||<svc>.<ns>.svc.<domain>
//	                               invalid|<port>|<Kind>.<group>|<name>.<ns>
//	Route                          <Kind>/<ns>/<name>/rule/<i>/match/<j>, or "default"
//	Workload, Service              <ns>/<name>
//	TrustBundle                    <trust-domain>
//
// # Shape
//
// The Envoy resources are shaped so that the Weft node proxy, Envoy and a
// proxyless gRPC-Go client (xds:///<svc>.<ns>.svc.<domain>:<port>) read the
// same ones: the Listener carries its HttpConnectionManager both as
// api_listener (the only part gRPC reads) and in a filter chain (what Envoy
// and go-control-plane's Snapshot.Consistent look at), with RDS over ADS
// and the filters [fault, router]; clusters are EDS over ADS; endpoints
// sit in one weighted locality. docs/concepts/xds.md has the field-by-field
// mapping from the CRDs and the reasons for each choice.
package translate
