// Package identity is the control plane's signing service: the gRPC API of
// api/identity/v1 (read its proto for the wire protocol) on port 15012.
//
// For every call it answers three questions, in this order:
//
//  1. Who is calling? BootstrapNode: a NodeAuthenticator checks the
//     credential in the request (a join token, or a Kubernetes service-account
//     token through TokenReview) and that it proves the node named in the
//     request. SignWorkload and WatchTrustBundle: the TLS client certificate
//     must be a node SVID (spiffe://<td>/weft/node/<node>) that verifies
//     against the current trust bundle.
//  2. May it have this identity? A workload SVID is signed only for a pod that
//     exists (with the given UID, if any), is scheduled on the caller's node,
//     and is enrolled in the mesh (model.EnrollmentOf).
//  3. Which identity? Always derived here, from the node name or the pod's
//     service account; names in the CSR are ignored.
//
// Every refusal is a *Refusal: a gRPC code, a short reason (the metric
// label) and a message for the operator. Counts per RPC and result are
// exported as weft_identity_requests_total.
package identity
