// Package xds is the control plane's xDS server: go-control-plane's
// Aggregated Discovery Service, state of the world and delta, on port 15012
// next to the identity API. It turns "the model changed" into one
// consistent, versioned snapshot per connected node proxy.
//
// # Flow
//
//	Notify() ─► debounce ─► for every connected node: Builder(node)
//	                                 │
//	        a node's first stream ───┘      NewSnapshot ─► Consistent ─► SetSnapshot
//	        accepted (built at once)        (refused: counted, logged, previous stays)
//
// Run owns every write to the snapshot cache: it builds (Parallelism
// nodes at a time), sets snapshots, and clears the snapshot of a node whose
// last stream closed. Stream callbacks only record who is connected and
// wake Run.
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
// client must tolerate a reference that arrives before its target.
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
