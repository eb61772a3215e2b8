// Package v1alpha1 holds Weft's own custom resources, group weftmesh.io:
// TrafficPolicy (retries with a budget, timeouts, fault injection, load
// balancing, outlier detection, connection limits) and AuthorizationPolicy
// (allow or deny by source identity and namespace, and for HTTP by method and
// path). Both attach to Services with targetRefs, as Gateway API policies do.
//
// Validation lives in the schema (OpenAPI and CEL markers below), so a bad
// object is rejected at `kubectl apply` with a message that says what to fix.
// `make generate` produces deepcopy code and the CRD YAML in charts/weft/crds.
//
// +kubebuilder:object:generate=true
// +groupName=weftmesh.io
package v1alpha1
