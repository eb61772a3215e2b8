package v1alpha1_test

// ApplyCRDs lives in tests/kube; its error paths are tested here, next to
// the CRDs it installs, because this package already runs a cluster with
// them.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// TestApplyCRDs checks the harness's ApplyCRDs beyond the happy path that
// setup exercises: a second apply updates in place, and a file that is
// not a CRD or a CRD whose names clash is reported clearly.
func TestApplyCRDs(t *testing.T) {
	e := setup(t, "apply-crds")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	t.Run("second apply updates", func(t *testing.T) {
		if err := e.cluster.ApplyCRDs(ctx, crdDir); err != nil {
			t.Fatalf("re-apply %s: got %v, want nil", crdDir, err)
		}
	})

	t.Run("empty dir", func(t *testing.T) {
		err := e.cluster.ApplyCRDs(ctx, t.TempDir())
		if err == nil || !strings.Contains(err.Error(), "no CustomResourceDefinition found") {
			t.Fatalf("got %v, want an error saying no CRD was found", err)
		}
	})

	t.Run("not a CRD", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "sub", "mixed.yaml"), `# a comment-only document is skipped
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nope}
`)
		err := e.cluster.ApplyCRDs(ctx, dir)
		for _, w := range []string{"mixed.yaml (document 2)", `kind "Deployment" is not a CustomResourceDefinition`} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("got %v, want an error containing %q", err, w)
			}
		}
	})

	t.Run("names conflict", func(t *testing.T) {
		dir := t.TempDir()
		// Same group and kind as the TrafficPolicy CRD, another plural.
		write(t, filepath.Join(dir, "conflict.yaml"), `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clashingpolicies.weftmesh.io}
spec:
  group: weftmesh.io
  scope: Namespaced
  names: {kind: TrafficPolicy, listKind: TrafficPolicyList, plural: clashingpolicies, singular: clashingpolicy}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`)
		t.Cleanup(func() {
			crds, err := apiextensionsclient.NewForConfig(rest.CopyConfig(e.cluster.Config))
			if err == nil {
				err = crds.ApiextensionsV1().CustomResourceDefinitions().Delete(context.Background(), "clashingpolicies.weftmesh.io", metav1.DeleteOptions{})
			}
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete the clashing CRD: %v", err)
			}
		})
		err := e.cluster.ApplyCRDs(ctx, dir)
		for _, w := range []string{"clashingpolicies.weftmesh.io", "names not accepted", "NamesAccepted=False"} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("got %v, want an error containing %q", err, w)
			}
		}
	})
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
