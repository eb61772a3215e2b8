package v1alpha1_test

// Tests that keep docs/reference/crds.md true: its YAML examples are
// accepted by the real apiserver, and it mentions every field and every
// validation message of the generated CRDs.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const referenceDoc = "../../docs/reference/crds.md"

// yamlBlock matches a fenced ```yaml block of the reference page.
var yamlBlock = regexp.MustCompile("(?ms)^```yaml\n(.*?)^```")

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatalf("read the CRD reference: %v", err)
	}
	return string(b)
}

// TestDocExamplesAccepted creates every YAML example of the reference page,
// with strict field validation, in a namespace of its own.
func TestDocExamplesAccepted(t *testing.T) {
	e := setup(t, "doc-examples")
	resources := map[string]schema.GroupVersionResource{
		"weftmesh.io/v1alpha1/TrafficPolicy":       trafficPolicies,
		"weftmesh.io/v1alpha1/AuthorizationPolicy": authorizationPolicies,
		"gateway.networking.k8s.io/v1/HTTPRoute":   httpRoutes,
		"gateway.networking.k8s.io/v1/GRPCRoute":   grpcRoutes,
	}
	blocks := yamlBlock.FindAllStringSubmatch(readDoc(t), -1)
	created := map[string]int{} // kind -> examples
	for i, m := range blocks {
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(m[1])))
		for {
			raw, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("yaml block %d: %v", i+1, err)
			}
			if len(bytes.TrimSpace(raw)) == 0 {
				continue
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(raw, &u.Object); err != nil {
				t.Fatalf("yaml block %d: %v\n%s", i+1, err, raw)
			}
			key := u.GetAPIVersion() + "/" + u.GetKind()
			gvr, ok := resources[key]
			if !ok {
				t.Errorf("yaml block %d: %s is not one of the kinds this page documents; show other YAML as ```text", i+1, key)
				continue
			}
			t.Run(u.GetKind()+"/"+u.GetName(), func(t *testing.T) {
				if _, err := e.createUnstructured(t.Context(), gvr, u); err != nil {
					t.Fatalf("example in yaml block %d: got %v, want it accepted\n%s", i+1, err, raw)
				}
			})
			created[u.GetKind()]++
		}
	}
	for _, kind := range []string{"TrafficPolicy", "AuthorizationPolicy", "HTTPRoute"} {
		if created[kind] == 0 {
			t.Errorf("the reference has no %s example, want at least one", kind)
		}
	}
	if created["TrafficPolicy"] < 2 {
		t.Errorf("the reference has %d TrafficPolicy examples, want the canary one and the fault-injection one", created["TrafficPolicy"])
	}
}

// TestDocCoversSchema checks that the reference names every spec field of
// Weft's CRDs (as `spec.a.b`, with [] for list items) and quotes every CEL
// message, so a field or rule added to the types cannot go undocumented.
func TestDocCoversSchema(t *testing.T) {
	doc := readDoc(t)
	files, err := filepath.Glob(filepath.Join(crdDir, "weftmesh.io_*.yaml"))
	if err != nil || len(files) != 2 {
		t.Fatalf("glob Weft CRDs in %s: got %v (err %v), want 2 files", crdDir, files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		t.Run(crd.Spec.Names.Kind, func(t *testing.T) {
			if !strings.Contains(doc, "\n## "+crd.Spec.Names.Kind+"\n") {
				t.Errorf("no section \"## %s\"", crd.Spec.Names.Kind)
			}
			for _, v := range crd.Spec.Versions {
				spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
				var paths, messages []string
				walkSchema("spec", spec, &paths, &messages)
				for _, p := range paths {
					if !strings.Contains(doc, "| `"+p+"` |") {
						t.Errorf("field %s (%s) is not in a table row of %s", p, v.Name, referenceDoc)
					}
				}
				for _, m := range messages {
					if !strings.Contains(doc, "`"+m+"`") {
						t.Errorf("validation message %q is not quoted in %s", m, referenceDoc)
					}
				}
			}
		})
	}
}

// walkSchema collects the dotted path of every property under s, and every
// x-kubernetes-validations message.
func walkSchema(path string, s apiextensionsv1.JSONSchemaProps, paths, messages *[]string) {
	for _, r := range s.XValidations {
		if !slices.Contains(*messages, r.Message) {
			*messages = append(*messages, r.Message)
		}
	}
	if path != "spec" && !strings.HasSuffix(path, "[]") {
		*paths = append(*paths, path)
	}
	if s.Items != nil && s.Items.Schema != nil {
		walkSchema(path+"[]", *s.Items.Schema, paths, messages)
	}
	for name, p := range s.Properties {
		walkSchema(path+"."+name, p, paths, messages)
	}
}
