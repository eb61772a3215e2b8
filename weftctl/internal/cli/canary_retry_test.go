package cli

import (
	"bytes"
	"reflect"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"
)

// TestCanarySetRetriesOnConflict checks that a concurrent change between
// weftctl's read and its update is neither lost nor overwritten: the update
// fails with a conflict, and weftctl reads the route again.
func TestCanarySetRetriesOnConflict(t *testing.T) {
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(testRoute), &obj); err != nil {
		t.Fatal(err)
	}
	route := &unstructured.Unstructured{Object: obj}
	route.SetResourceVersion("1")
	dc := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{httpRoutes: "HTTPRouteList"}, route)

	updates := 0
	dc.PrependReactor("update", "httproutes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		updates++
		if updates > 1 {
			return false, nil, nil // let the tracker store it
		}
		// Someone else changed "other" meanwhile: store it, and fail ours.
		cur, err := dc.Tracker().Get(httpRoutes, "canary", "reviews")
		if err != nil {
			return true, nil, err
		}
		u := cur.(*unstructured.Unstructured).DeepCopy()
		refs := backendRefs(mustRules(t, u)[1])
		refs[1]["weight"] = int64(7)
		if err := dc.Tracker().Update(httpRoutes, u, "canary"); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewConflict(httpRoutes.GroupResource(), "reviews", nil)
	})

	k := &kubeClient{namespace: "canary", source: "test", host: "https://example"}
	var out bytes.Buffer
	if err := canarySet(t.Context(), &out, k, dc, "reviews", []backendWeight{{"reviews-v1", 60}, {"reviews-v2", 40}}, false); err != nil {
		t.Fatal(err)
	}
	if updates != 2 {
		t.Errorf("%d updates, want 2 (one conflict, one retry)", updates)
	}
	got, err := dc.Resource(httpRoutes).Namespace("canary").Get(t.Context(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if w, want := weights(t, got), []map[string]int64{{"reviews-v1": 60, "reviews-v2": 40}, {"reviews-v1": 60, "other": 7}}; !reflect.DeepEqual(w, want) {
		t.Errorf("weights %v, want %v (the concurrent change to other must survive)", w, want)
	}
}

func mustRules(t *testing.T, u *unstructured.Unstructured) []map[string]any {
	t.Helper()
	rs, err := rules(u)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}
