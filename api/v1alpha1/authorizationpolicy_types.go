package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthorizationPolicy allows or denies traffic to pods in the mesh by the
// caller's SPIFFE identity and namespace, the destination port and, for
// HTTP, the method and path. It is enforced by the node proxy of the
// destination pod.
//
// Evaluation for a request to a pod: if any Deny policy that applies to the
// pod has a matching rule, the request is denied; otherwise, if any Allow
// policy applies to the pod, the request is allowed only when one of their
// rules matches; otherwise it is allowed.
//
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=weft,shortName=authz
// +kubebuilder:printcolumn:name="Action",type=string,JSONPath=`.spec.action`
// +kubebuilder:printcolumn:name="Targets",type=string,JSONPath=`.spec.targetRefs[*].name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AuthorizationPolicySpec `json:"spec"`
	Status PolicyStatus            `json:"status,omitempty"`
}

// AuthorizationPolicyList is a list of AuthorizationPolicy.
//
// +kubebuilder:object:root=true
type AuthorizationPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthorizationPolicy `json:"items"`
}

// AuthorizationAction is Allow or Deny.
//
// +kubebuilder:validation:Enum=Allow;Deny
type AuthorizationAction string

// Actions.
const (
	ActionAllow AuthorizationAction = "Allow"
	ActionDeny  AuthorizationAction = "Deny"
)

// AuthorizationPolicySpec is the desired policy.
type AuthorizationPolicySpec struct {
	// TargetRefs are the Services whose pods the policy protects; empty
	// means every enrolled pod in the namespace.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	TargetRefs []ServiceTargetRef `json:"targetRefs,omitempty"`
	// Action taken when a rule matches.
	Action AuthorizationAction `json:"action"`
	// Rules; a request matches the policy when it matches any rule. An
	// Allow policy with no rules allows nothing; a Deny policy with no
	// rules denies nothing.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationRule matches when the source matches one of From (or From is
// empty) and the operation matches one of To (or To is empty).
//
// +kubebuilder:validation:XValidation:rule="(has(self.from) && size(self.from) > 0) || (has(self.to) && size(self.to) > 0)",message="a rule needs at least one from or to entry"
type AuthorizationRule struct {
	// From lists the callers the rule matches.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	From []AuthorizationSource `json:"from,omitempty"`
	// To lists the operations the rule matches.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	To []AuthorizationOperation `json:"to,omitempty"`
}

// AuthorizationSource matches a caller by identity and namespace; every set
// field must match.
//
// +kubebuilder:validation:XValidation:rule="(has(self.identities) && size(self.identities) > 0) || (has(self.namespaces) && size(self.namespaces) > 0)",message="from entries need identities or namespaces"
type AuthorizationSource struct {
	// Identities are SPIFFE IDs such as
	// spiffe://cluster.local/ns/shop/sa/frontend; a trailing "*" matches
	// any suffix (spiffe://cluster.local/ns/shop/* is every workload of
	// namespace shop, spiffe://* any caller with a mesh identity). A "*"
	// anywhere else is refused.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^spiffe://([*]|[^/*]+(/[^*]*)?[*]?)$`
	// +kubebuilder:validation:items:XValidation:rule="self.startsWith('spiffe://') && (!self.contains('*') || self.indexOf('*') == size(self) - 1)",message="identities must be SPIFFE IDs such as spiffe://cluster.local/ns/shop/sa/frontend, with a * only at the end"
	// +listType=set
	// +optional
	Identities []string `json:"identities,omitempty"`
	// Namespaces of the caller (namespace names, no wildcards).
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:items:XValidation:rule="self == self.lowerAscii() && !self.contains('*')",message="namespaces must be namespace names: lower case, no wildcards"
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`
}

// AuthorizationOperation matches what is called; every set field must
// match. Methods and paths apply to HTTP only: a TCP connection never
// matches an operation that sets them.
//
// +kubebuilder:validation:XValidation:rule="(has(self.ports) && size(self.ports) > 0) || (has(self.methods) && size(self.methods) > 0) || (has(self.paths) && size(self.paths) > 0)",message="to entries need ports, methods or paths"
type AuthorizationOperation struct {
	// Ports are destination (pod) ports.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	// +optional
	Ports []int32 `json:"ports,omitempty"`
	// Methods are HTTP methods in upper case, e.g. GET (methods are case
	// sensitive, so "get" would never match).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=32
	// +kubebuilder:validation:items:Pattern=`^[A-Z]+(-[A-Z]+)*$`
	// +kubebuilder:validation:items:XValidation:rule="self == self.upperAscii()",message="methods must be upper-case HTTP methods such as GET or POST"
	// +listType=set
	// +optional
	Methods []string `json:"methods,omitempty"`
	// Paths are exact paths, or prefixes ending in "*" (e.g. /api/*
	// matches every path that starts with /api/). They start with "/"; a
	// "*" is allowed only at the end.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^/[^*]*[*]?$`
	// +kubebuilder:validation:items:XValidation:rule="self.startsWith('/') && (!self.contains('*') || self.indexOf('*') == size(self) - 1)",message="paths must start with / and may end with * (a prefix such as /api/*); a * is allowed only at the end"
	// +listType=set
	// +optional
	Paths []string `json:"paths,omitempty"`
}
