// Package kube is the Kubernetes side of the control plane: it turns API
// objects into model types and keeps CA material in a Secret. Kubernetes
// types do not travel past this package (and kubeauth).
package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// Pods looks pods up with a direct API read, so that a signing decision is
// made on the pod as it is now (a cache could still show a deleted pod, or
// not yet show a new one).
type Pods struct {
	Client kubernetes.Interface
}

// Pod implements identity.Pods.
func (p Pods) Pod(ctx context.Context, namespace, name string) (*model.Pod, *model.Namespace, error) {
	pod, err := p.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, fmt.Errorf("pod %s/%s: %w", namespace, name, model.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	ns, err := p.Client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return PodFromAPI(pod), nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	return PodFromAPI(pod), NamespaceFromAPI(ns), nil
}

// PodFromAPI converts a Pod.
func PodFromAPI(p *corev1.Pod) *model.Pod {
	return &model.Pod{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), NodeName: p.Spec.NodeName,
		ServiceAccount: p.Spec.ServiceAccountName, IP: p.Status.PodIP, HostNetwork: p.Spec.HostNetwork,
		Labels: p.Labels, Annotations: p.Annotations}
}

// NamespaceFromAPI converts a Namespace.
func NamespaceFromAPI(ns *corev1.Namespace) *model.Namespace {
	return &model.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}
}
