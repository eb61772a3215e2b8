// Package xdsclient is the node proxy's xDS client: one delta ADS stream
// (envoy.service.discovery.v3.AggregatedDiscoveryService,
// DeltaAggregatedResources) to the control plane on port 15012, holding
// the latest accepted resources of every subscribed type.
//
// # Connection
//
// Mutual TLS 1.3: the client presents the node SVID
// (spiffe://<td>/weft/node/<node>) and accepts only a server presenting
// spiffe://<td>/weft/control-plane that chains to the trust bundle. Both
// are read from their sources at every handshake, so renewals and root
// rotations apply to the next connection. The xDS node id is the node
// name. Each stream gets a connection of its own. No gRPC keepalive is
// set (the server's default enforcement closes connections pinged more
// often than every 5 minutes); a peer that vanishes without closing the
// connection is found by TCP keepalive, which Go turns on by default.
//
// # Flow
//
//	client                                        control plane
//	  ── per type: {node, type_url, subscribe ["*"],
//	               initial_resource_versions} ──►
//	  ◄── {type_url, resources, removed_resources, nonce} ──
//	      copy the type's map, replace resources, delete removed ones,
//	      check each Any unmarshals into the type's Go message, call Apply
//	  ── {type_url, response_nonce}                      ──► ACK: state replaced
//	  ── {type_url, response_nonce, error_detail}        ──► NACK: state kept
//
// Types are subscribed with an explicit "*" rather than an empty name
// list, so the subscription stays wildcard on a server that has legacy
// wildcard mode turned off (go-control-plane's DeactivateLegacyWildcard,
// which a server of proxyless gRPC clients may set).
//
// A response is rejected as a whole, and the previous state kept, when a
// resource has no name, is sent twice, is both sent and removed, has an
// Any of another type, or does not unmarshal into the type's Go message
// (nested Anys are not looked into), or when Apply returns an error. The
// error_detail is google.rpc.Status{code: INVALID_ARGUMENT, message: the
// error}. A resource with no body is a TTL heartbeat and changes nothing.
// A response of a type not subscribed to is logged and not answered
// (answering would subscribe to it). A response that changes nothing (no
// resource, nothing held removed, type already received) is ACKed without
// calling Apply.
//
// # Reconnecting
//
// When the stream ends, Run waits and opens a new one, forever until its
// context ends: MinBackoff doubling to MaxBackoff, each wait jittered to
// between half and all of it, back to MinBackoff after a stream on which
// the server sent something. The state is kept while disconnected; Apply
// is never called with an emptied state.
//
// A new stream sends, per type, initial_resource_versions: the name and
// version of every resource held. The server then sends only what is new
// or changed and lists in removed_resources the held names it no longer
// has, and the response is applied like any other. go-control-plane
// v0.14.0 does this for wildcard subscriptions in both its snapshot cache
// (the control plane's) and its linear cache (createDeltaResponse and
// LinearCache.computeResourceChange diff the subscription's "returned
// resources", which start as initial_resource_versions), and on the first
// wildcard request of a type it answers even when nothing changed. Weft's
// control plane versions resources by a hash of their content, so versions
// survive its restarts. TestServerRestart proves the round trip against a
// real go-control-plane server, with either cache.
//
// After a NACK the server counts the rejected versions as sent: such a
// resource comes again when it changes, or on the next stream, whose
// initial_resource_versions list only what the client holds.
//
// # Metrics
//
//	weft_xds_client_connected                  1 while the stream is up (a response came on it)
//	weft_xds_client_updates_total{type,result} responses, by type (type URL without
//	                                           type.googleapis.com/) and result (ack, nack)
//	weft_xds_client_reconnects_total           streams opened after the first
//
// docs/concepts/xds-client.md explains the same for operators.
package xdsclient
