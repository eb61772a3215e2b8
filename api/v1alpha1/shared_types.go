package v1alpha1

import (
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Duration is a Gateway API duration (GEP-2257): one to four
// number+unit pairs, each number at most five digits, units h, m, s or ms;
// for example "500ms", "10s", "1m30s". Fractions ("1.5s") and other units
// ("us", "d") are not accepted.
//
// The pattern is Gateway API's, so a value valid in an HTTPRoute timeout is
// valid here; the CEL rule repeats it only to give a readable message.
//
// +kubebuilder:validation:MaxLength=28
// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,5}(h|m|s|ms)){1,4}$')",message="must be a duration such as 500ms, 10s or 1m30s: one to four number+unit pairs, units h, m, s or ms"
type Duration string

// Percent is a whole percentage from 0 to 100.
//
// +kubebuilder:validation:Minimum=0
// +kubebuilder:validation:Maximum=100
type Percent int32

// ServiceTargetRef selects a Service in the policy's namespace, and
// optionally one of its ports by name. Group and Kind exist so the reference
// reads like a Gateway API policy targetRef; the only target accepted is a
// core Service.
//
// +kubebuilder:validation:XValidation:rule="self.kind == 'Service' && (size(self.group) == 0 || self.group == 'core')",message="targetRefs must point to a Service (group \"\" or \"core\", kind Service)"
type ServiceTargetRef struct {
	// Group of the target: "" (or "core") for a Service. Default "".
	// +kubebuilder:default=""
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Group string `json:"group,omitempty"`
	// Kind of the target: Service. Default Service.
	// +kubebuilder:default=Service
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the Service, in the policy's namespace: a DNS-1035 label
	// (lower case letters, digits and '-', starting with a letter).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// SectionName is the name of a port of the Service (spec.ports[].name);
	// empty means all ports.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	SectionName string `json:"sectionName,omitempty"`
}

// PolicyStatus is the Gateway API policy status: one entry per ancestor
// (the targeted Service) with Accepted and ResolvedRefs conditions, written
// by the controller weftmesh.io/mesh.
type PolicyStatus = gwapiv1.PolicyStatus
