// Package xds is the control plane's xDS server: the Aggregated Discovery
// Service, state of the world (go-control-plane's server and snapshot
// cache) and delta (this package's own, delta.go), on port 15012 next to
// the identity API. It turns "the model changed" into one consistent,
// versioned snapshot per connected node proxy.
//
// # Flow
//
//	Notify() ─► debounce ─► for every connected node: Builder(node)
//	                                 │
//	        a node's first stream ───┘      NewSnapshot ─► Consistent ─► set ─► wake the node's delta streams
//	        accepted (built at once)        (refused: counted, logged, previous stays)
//
// Run owns every write of snapshots: it builds (Parallelism nodes at a
// time), sets snapshots (in go-control-plane's cache for state-of-the-world
// streams, and for delta streams, which it wakes), and clears the snapshot
// of a node whose last stream closed. Stream callbacks only record who is
// connected and wake Run. Each delta stream sends, on its own goroutine,
// what changed since its last response.
//
// # Cost at scale
//
// Every node gets the same listeners, routes, clusters and endpoints. The
// translator hands all nodes the same lists, and the same messages for
// resources that did not change since the last translation; a resource set
// (each resource serialized once, its version, and the delta wire form) is
// built once per list and a resource encoded once per message (setCache).
// A delta stream that holds a whole set is sent the difference between two
// sets, computed once for all streams. A change of one route thus costs,
// per node, a few map lookups and one small response.
//
// Responses that clients have not answered yet are bounded in bytes
// (Config.SendBudget, sendBudget): a thousand nodes connecting at once take
// turns instead of holding their whole configurations in memory at once.
//
// # Authentication
//
// A stream is opened only by a caller whose TLS client certificate is a
// node SVID, spiffe://<td>/weft/node/<node>, that verifies against the
// trust bundle in force (NodeFromPeer). Every request's node.id must equal
// that <node>; otherwise the stream ends with PermissionDenied. A delta
// request may omit the node after the first one. Refusals are counted by
// reason: no_client_certificate, bad_client_certificate, not_a_node,
// node_mismatch.
//
// # Snapshots and versions
//
// Snapshot implements go-control-plane's cache.ResourceSnapshot itself,
// because cache.NewSnapshot refuses type URLs it does not know and Weft
// sends its own types (weft.xds.v1.Workload, TrustBundle, ...) next to
// Envoy's. The cache and both protocol servers only ask a snapshot for
// resources and versions by type URL and wrap resource bytes in an Any
// with the requested type URL, so any protobuf message works. Versions are
// content hashes: per resource (what delta compares), per type (what
// state-of-the-world compares, so an unchanged type is not resent) and per
// snapshot (an unchanged node is not set again at all).
//
// The cache runs in non-ADS mode: in ADS mode go-control-plane answers a
// request that names resources only when it names every resource of that
// type in the snapshot, which would leave a proxyless gRPC client (asking
// for its one listener) without an answer. The price is that responses of
// different types are not ordered (CDS before EDS, LDS before RDS); a
// client must tolerate a reference that arrives before its target. A delta
// stream sends the types changed by one snapshot in the order clusters,
// endpoints, listeners, routes, others; but each type waits for the
// client's answer to its previous response, so that order is not a
// promise either.
//
// # Consistency
//
// A snapshot is set only if every listener's RDS name exists, every EDS
// cluster has its ClusterLoadAssignment, and every cluster a route or TCP
// proxy names exists (Snapshot.Consistent). Resources must also be
// well formed (NewSnapshot): the message type matches the type URL, and
// names are present and unique.
//
// # Metrics
//
//	weft_xds_clients{protocol}              accepted streams open now (sotw, delta)
//	weft_xds_pushes_total{type}             responses sent, by type
//	weft_xds_push_latency_seconds{trigger}  model change (or connect) to snapshot set
//	weft_xds_rejected_streams_total{reason} streams refused
//	weft_xds_inconsistent_snapshots_total   snapshots refused as inconsistent or invalid
//	weft_xds_build_errors_total             Builder failures
//
// docs/concepts/xds-server.md explains the same for operators.
package xds
