package kubewriter

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func notFoundIsGone(err error) error {
	if apierrors.IsNotFound(err) {
		return errGone
	}
	return err
}
