package telemetry

// Attribute names Weft sets on its spans, besides the OpenTelemetry HTTP
// semantic conventions (http.request.method, http.route,
// http.response.status_code, url.path, server.address, server.port,
// client.address, network.protocol.name/version).
const (
	AttrNode                = "weft.node"
	AttrSourceID            = "weft.source.identity"
	AttrSourceNamespace     = "weft.source.namespace"
	AttrSourceWorkload      = "weft.source.workload"
	AttrDestinationID       = "weft.destination.identity"
	AttrDestinationNS       = "weft.destination.namespace"
	AttrDestinationWorkload = "weft.destination.workload"
	AttrService             = "weft.destination.service"
	AttrCluster             = "weft.destination.cluster"
	AttrRetryAttempt        = "weft.retry.attempt"
	AttrFault               = "weft.fault"               // "delay", "abort"
	AttrLocalReply          = "weft.local_reply"         // the reason of a reply the proxy made
	AttrTimeout             = "weft.timeout"             // true when a timeout ended the request
	AttrNoHealthyUpstream   = "weft.no_healthy_upstream" // true when no endpoint could be picked
	AttrDenied              = "weft.denied"              // true when authorization refused it
)
