package chart

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// gatewayCRDSource marks the documents templates/gateway-api-crds.yaml renders.
const gatewayCRDSource = "# Source: weft/templates/gateway-api-crds.yaml\n"

var gatewayCRDFiles = filepath.Join(chartDir, "files", "gateway-api")

// splitGatewayCRDs separates the Gateway API CRDs from the rest of a
// rendered manifest. The goldens hold the rest: the CRDs are 650 KB of
// upstream YAML, checked against their source by TestGatewayAPICRDs.
func splitGatewayCRDs(manifest []byte) (rest []byte, crds [][]byte) {
	docs := bytes.Split(manifest, []byte("---\n"))
	var keep [][]byte
	for _, d := range docs {
		if bytes.HasPrefix(d, []byte(gatewayCRDSource)) {
			crds = append(crds, d)
			continue
		}
		keep = append(keep, d)
	}
	return bytes.Join(keep, []byte("---\n")), crds
}

// renderedCRDNames decodes rendered CRD documents and checks each against
// the chart file it came from: the same object with one more annotation,
// helm.sh/resource-policy: keep.
func renderedCRDNames(t *testing.T, docs [][]byte) []string {
	t.Helper()
	var names []string
	for _, d := range docs {
		var got map[string]any
		if err := yaml.Unmarshal(d, &got); err != nil {
			t.Fatalf("decode rendered CRD: %v", err)
		}
		meta, _ := got["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		annotations, _ := meta["annotations"].(map[string]any)
		if annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("%s: annotations %v, want helm.sh/resource-policy: keep (an uninstall would delete every route)", name, annotations)
		}
		parts := strings.SplitN(name, ".", 2)
		if len(parts) != 2 {
			t.Fatalf("rendered CRD name %q", name)
		}
		src, err := os.ReadFile(filepath.Join(gatewayCRDFiles, parts[1]+"_"+parts[0]+".yaml"))
		if err != nil {
			t.Fatalf("%s: source file: %v", name, err)
		}
		var want map[string]any
		if err := yaml.Unmarshal(src, &want); err != nil {
			t.Fatal(err)
		}
		want["metadata"].(map[string]any)["annotations"].(map[string]any)["helm.sh/resource-policy"] = "keep"
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: rendered CRD differs from %s beyond the keep annotation", name, parts[1]+"_"+parts[0]+".yaml")
		}
		names = append(names, name)
	}
	return names
}

// TestGatewayAPICRDs checks the gatewayAPI.installCRDs toggle: rendered
// unchanged (plus the keep annotation) when on, absent when off; and, with
// the lookup against the real apiserver (helm template --dry-run=server),
// left out when the cluster already has CRDs this release did not install,
// rendered again for CRDs this release owns.
func TestGatewayAPICRDs(t *testing.T) {
	want := []string{"grpcroutes.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io"}
	t.Run("on", func(t *testing.T) {
		_, crds := splitGatewayCRDs(render(t, ""))
		if got := renderedCRDNames(t, crds); !reflect.DeepEqual(got, want) {
			t.Errorf("rendered Gateway API CRDs %v, want %v", got, want)
		}
	})
	t.Run("off", func(t *testing.T) {
		out := helm(t, "template", release, chartDir, "--namespace", namespace, "--set", "gatewayAPI.installCRDs=false")
		if _, crds := splitGatewayCRDs(out); len(crds) != 0 {
			t.Errorf("gatewayAPI.installCRDs=false rendered %d Gateway API CRDs", len(crds))
		}
		if bytes.Contains(out, []byte("kind: CustomResourceDefinition")) {
			t.Error("gatewayAPI.installCRDs=false: a CustomResourceDefinition is still rendered")
		}
	})
	t.Run("cluster", func(t *testing.T) {
		newApplier(t) // installs the chart's CRDs from their files: not this release's
		c := cluster
		serverRender := func() []string {
			out := helm(t, "template", release, chartDir, "--namespace", namespace, "--dry-run=server", "--kubeconfig", c.Kubeconfig)
			_, crds := splitGatewayCRDs(out)
			return renderedCRDNames(t, crds)
		}
		if got := serverRender(); len(got) != 0 {
			t.Errorf("the cluster has the Gateway API CRDs (not from this release); rendered %v, want none", got)
		}
		// Mark httproutes as installed by this release: it is rendered again
		// (so helm upgrade keeps managing it), grpcroutes is not.
		ext := apiextensionsclient.NewForConfigOrDie(rest.CopyConfig(c.Config)).ApiextensionsV1().CustomResourceDefinitions()
		set := func(release, ns any) {
			b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{
				"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns}}})
			if _, err := ext.Patch(context.Background(), want[1], types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() { set(nil, nil) })
		set(release, namespace)
		if got := serverRender(); !reflect.DeepEqual(got, want[1:]) {
			t.Errorf("httproutes owned by release %s/%s: rendered %v, want %v", namespace, release, got, want[1:])
		}
		set("other", namespace)
		if got := serverRender(); len(got) != 0 {
			t.Errorf("httproutes owned by another release: rendered %v, want none", got)
		}
	})
}
