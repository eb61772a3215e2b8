package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/certs"
)

// SecretStore keeps CA material in a Secret with the cert-manager keys
// (tls.crt, tls.key, ca.crt). Point it at a Secret cert-manager manages to
// bring your own CA; otherwise the control plane creates it on first start.
type SecretStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

var _ certs.Store = SecretStore{}

// Load reads the Secret.
func (s SecretStore) Load(ctx context.Context) (*certs.Material, error) {
	sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, certs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("load CA secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	if len(sec.Data[certs.KeyTLSCrt]) == 0 || len(sec.Data[certs.KeyTLSKey]) == 0 {
		return nil, fmt.Errorf("CA secret %s/%s lacks %s or %s", s.Namespace, s.Name, certs.KeyTLSCrt, certs.KeyTLSKey)
	}
	return &certs.Material{TLSCrt: sec.Data[certs.KeyTLSCrt], TLSKey: sec.Data[certs.KeyTLSKey], CACrt: sec.Data[certs.KeyCACrt]}, nil
}

// Create creates the Secret; a replica that loses the race gets ErrExists.
func (s SecretStore) Create(ctx context.Context, m *certs.Material) error {
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace,
			Labels: map[string]string{"app.kubernetes.io/part-of": "weft"}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{certs.KeyTLSCrt: m.TLSCrt, certs.KeyTLSKey: m.TLSKey, certs.KeyCACrt: m.CACrt},
	}
	_, err := s.Client.CoreV1().Secrets(s.Namespace).Create(ctx, sec, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return certs.ErrExists
	}
	if err != nil {
		return fmt.Errorf("create CA secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}
