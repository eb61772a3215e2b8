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
// Where an OpenAPI pattern would only print a regular expression, a CEL rule
// repeats the check with a readable message. The apiserver refuses a CRD
// whose CEL rules may cost too much, estimated from the largest object the
// schema allows, so every list and string a rule reads has a maxItems or
// maxLength; the limits of AuthorizationPolicy's nested lists are what keeps
// it under budget. Raise one only together with `go test ./api/v1alpha1/`,
// which installs the CRDs into a real kube-apiserver and fails when it
// refuses them. docs/reference/crds.md lists every field and message.
//
// +kubebuilder:object:generate=true
// +groupName=weftmesh.io
package v1alpha1
