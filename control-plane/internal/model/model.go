// Package model is the control plane's view of the cluster as plain data:
// namespaces, pods, and (from Step 2 on) services, routes and policies.
// Sources (Kubernetes informers, a directory of YAML) fill it; the identity
// service and the xDS translator read it. It imports neither client-go nor
// xDS types.
package model

import (
	"errors"
	"strings"
)

// Annotation and label keys users set.
const (
	// MeshKey on a namespace (annotation or label) with value MeshEnabled
	// enrolls its pods; on a pod with value MeshDisabled it opts the pod out.
	MeshKey      = "weftmesh.io/mesh"
	MeshEnabled  = "enabled"
	MeshDisabled = "disabled"
)

// ErrNotFound is wrapped by lookups of objects that do not exist.
var ErrNotFound = errors.New("not found")

// Namespace is a Kubernetes namespace.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Pod is a Kubernetes pod, reduced to what the mesh needs.
type Pod struct {
	Namespace      string
	Name           string
	UID            string
	NodeName       string // "" while unscheduled
	ServiceAccount string // "" means "default"
	IP             string // status.podIP; "" until the pod has one
	HostNetwork    bool
	Labels         map[string]string
	Annotations    map[string]string
	// Workload is the controller that owns the pod (e.g. the Deployment),
	// as metrics' source_workload/destination_workload labels name it; see
	// WorkloadName.
	Workload string
}

// Key returns "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// Keys of the pod labels WorkloadName reads.
const (
	PodTemplateHashLabel = "pod-template-hash"
	AppNameLabel         = "app.kubernetes.io/name"
	AppLabel             = "app"
)

// WorkloadName is the name of the workload a pod belongs to, the name
// metrics and spans use for it (Istio's *_workload, Linkerd's deployment):
//   - owner (the ownerReference with controller: true) a ReplicaSet: its
//     name without the "-<pod-template-hash>" suffix, taken from the pod's
//     pod-template-hash label, so "web-7d9f8b6c5" gives the Deployment
//     "web"; the ReplicaSet name as is when the label is absent or is not
//     its suffix;
//   - owner of any other kind (StatefulSet, DaemonSet, Job...): its name;
//   - no controller owner (ownerKind or ownerName ""): the label
//     app.kubernetes.io/name, else the label app, else the pod name.
func WorkloadName(ownerKind, ownerName string, labels map[string]string, podName string) string {
	if ownerKind != "" && ownerName != "" {
		if ownerKind == "ReplicaSet" {
			if h := labels[PodTemplateHashLabel]; h != "" {
				if base, ok := strings.CutSuffix(ownerName, "-"+h); ok && base != "" {
					return base
				}
			}
		}
		return ownerName
	}
	if v := labels[AppNameLabel]; v != "" {
		return v
	}
	if v := labels[AppLabel]; v != "" {
		return v
	}
	return podName
}

// Enrollment says whether a pod is in the mesh and, if not, why.
type Enrollment int

// Enrollment values.
const (
	Enrolled Enrollment = iota
	NamespaceNotEnrolled
	PodOptedOut
	HostNetwork
)

func (e Enrollment) String() string {
	switch e {
	case Enrolled:
		return "enrolled"
	case NamespaceNotEnrolled:
		return "namespace not enrolled"
	case PodOptedOut:
		return "pod opted out"
	case HostNetwork:
		return "hostNetwork pod"
	}
	return "unknown"
}

// EnrollmentOf applies the enrollment rule: a pod is in the mesh when its
// namespace has weftmesh.io/mesh=enabled (annotation or label), the pod
// does not have the annotation weftmesh.io/mesh=disabled, and it does not
// use the host network.
func EnrollmentOf(ns *Namespace, pod *Pod) Enrollment {
	switch {
	case pod.HostNetwork:
		return HostNetwork
	case ns == nil || (ns.Annotations[MeshKey] != MeshEnabled && ns.Labels[MeshKey] != MeshEnabled):
		return NamespaceNotEnrolled
	case pod.Annotations[MeshKey] == MeshDisabled:
		return PodOptedOut
	}
	return Enrolled
}
