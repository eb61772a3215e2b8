// Package kube is the Kubernetes side of the control plane: Source watches
// the cluster with informers and keeps the model (see source.go), Pods reads
// a pod directly for signing decisions, and SecretStore keeps CA material in
// a Secret. Objects become model types through source/convert; Kubernetes
// types do not travel past source/** (and kubeauth).
package kube

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source/convert"
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
		return convert.Pod(pod), nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get namespace %s: %w", namespace, err)
	}
	return convert.Pod(pod), convert.Namespace(ns), nil
}
