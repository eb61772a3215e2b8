package v1alpha1

import (
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Duration is a Gateway API duration (GEP-2257): one to four
// number+unit pairs, units h, m, s, ms; for example "500ms", "1m30s".
//
// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
type Duration string

// Percent is a whole percentage from 0 to 100.
//
// +kubebuilder:validation:Minimum=0
// +kubebuilder:validation:Maximum=100
type Percent int32

// ServiceTargetRef selects a Service in the policy's namespace, and
// optionally one of its ports by name.
//
// +kubebuilder:validation:XValidation:rule="self.kind == 'Service' && (self.group == '' || self.group == 'core')",message="targetRefs must point to a Service (group \"\" or \"core\", kind Service)"
type ServiceTargetRef struct {
	// Group of the target: "" (or "core") for a Service.
	// +kubebuilder:default=""
	// +optional
	Group string `json:"group"`
	// Kind of the target: Service.
	// +kubebuilder:default=Service
	// +optional
	Kind string `json:"kind"`
	// Name of the Service.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// SectionName is the name of a port of the Service; empty means all
	// ports.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	SectionName string `json:"sectionName,omitempty"`
}

// PolicyStatus is the Gateway API policy status: one entry per ancestor
// (the targeted Service) with Accepted and ResolvedRefs conditions, written
// by the controller weftmesh.io/mesh.
type PolicyStatus = gwapiv1.PolicyStatus
