package docs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/tests/kube"
)

// checkedKinds are the kinds whose examples are applied, with their
// resources.
var checkedKinds = map[schema.GroupKind]string{
	{Group: "weftmesh.io", Kind: "TrafficPolicy"}:           "trafficpolicies",
	{Group: "weftmesh.io", Kind: "AuthorizationPolicy"}:     "authorizationpolicies",
	{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}: "httproutes",
	{Group: "gateway.networking.k8s.io", Kind: "GRPCRoute"}: "grpcroutes",
}

// kindLineRE finds a document that declares one of checkedKinds, to
// report one that does not parse instead of skipping it.
var kindLineRE = regexp.MustCompile(`(?m)^kind:\s*(TrafficPolicy|AuthorizationPolicy|HTTPRoute|GRPCRoute)\s*$`)

type yamlExample struct {
	where string // file:line of the block
	obj   *unstructured.Unstructured
}

// yamlExamples returns every object of checkedKinds in the ```yaml blocks
// of README.md and docs/**. Documents of other kinds, and fragments with no
// apiVersion and kind, are not examples of these objects and are skipped.
func yamlExamples(t *testing.T) []yamlExample {
	var out []yamlExample
	for _, file := range markdownFiles(t) {
		for _, b := range parseMarkdown(readFile(t, file)).blocks {
			if b.lang != "yaml" && b.lang != "yml" {
				continue
			}
			where := fmt.Sprintf("%s:%d", file, b.line)
			r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(b.text)))
			for n := 1; ; n++ {
				raw, err := r.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				docWhere := fmt.Sprintf("%s (document %d)", where, n)
				if err != nil {
					t.Errorf("%s: %v", docWhere, err)
					break
				}
				var m map[string]any
				if err := yaml.Unmarshal(raw, &m); err != nil {
					if kindLineRE.Match(raw) {
						t.Errorf("%s: not valid YAML: %v", docWhere, err)
					}
					continue
				}
				o := &unstructured.Unstructured{Object: m}
				if _, ok := checkedKinds[o.GroupVersionKind().GroupKind()]; !ok {
					if kindLineRE.Match(raw) {
						t.Errorf("%s: kind %s with apiVersion %q is not one the mesh reads", docWhere, o.GetKind(), o.GetAPIVersion())
					}
					continue
				}
				out = append(out, yamlExample{where: docWhere, obj: o})
			}
		}
	}
	return out
}

// TestYAMLExamples applies every TrafficPolicy, AuthorizationPolicy,
// HTTPRoute and GRPCRoute example of the docs with a server-side dry-run
// and strict field validation to a real kube-apiserver that has the
// chart's CRDs: the schema (and its CEL rules) must accept each one.
func TestYAMLExamples(t *testing.T) {
	examples := yamlExamples(t)
	if len(examples) == 0 {
		t.Fatal("no YAML example found: is the parser broken?")
	}
	c := kube.StartT(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if err := c.ApplyCRDs(ctx, chartCRDs(t)); err != nil {
		t.Fatalf("install the chart's CRDs: %v", err)
	}
	dyn, err := dynamic.NewForConfig(rest.CopyConfig(c.Config))
	if err != nil {
		t.Fatal(err)
	}
	namespaces := map[string]bool{}
	for _, ex := range examples {
		o := ex.obj
		gvk := o.GroupVersionKind()
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		if !namespaces[ns] {
			_, err := c.Clientset().CoreV1().Namespaces().Create(ctx,
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatalf("create namespace %s: %v", ns, err)
			}
			namespaces[ns] = true
		}
		body, err := o.MarshalJSON()
		if err != nil {
			t.Errorf("%s: %v", ex.where, err)
			continue
		}
		res := gvk.GroupVersion().WithResource(checkedKinds[gvk.GroupKind()])
		force := true
		_, err = dyn.Resource(res).Namespace(ns).Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
			DryRun: []string{metav1.DryRunAll}, FieldManager: "weft-docs-test", Force: &force, FieldValidation: "Strict",
		})
		if err != nil {
			t.Errorf("%s: %s %s/%s is refused by the apiserver: %v", ex.where, gvk.Kind, ns, o.GetName(), err)
		}
	}
	t.Logf("%d examples checked with a server-side dry-run", len(examples))
}

// chartCRDs copies every CustomResourceDefinition file found under
// charts/weft (wherever the chart keeps them) into one temporary directory
// for kube.ApplyCRDs, which wants directories holding nothing but CRDs.
func chartCRDs(t *testing.T) string {
	t.Helper()
	chart := filepath.Join(repoRoot(t), "charts", "weft")
	dir := t.TempDir()
	var n int
	err := filepath.WalkDir(chart, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !isCRDFile(b) {
			return nil
		}
		n++
		rel, _ := filepath.Rel(chart, p)
		return os.WriteFile(filepath.Join(dir, strings.ReplaceAll(rel, string(filepath.Separator), "_")), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no CustomResourceDefinition file under %s", chart)
	}
	return dir
}

// isCRDFile reports whether every document of a YAML file is a
// CustomResourceDefinition (templates and values are not, or do not parse).
func isCRDFile(b []byte) bool {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var crds int
	for {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return crds > 0
		}
		if err != nil {
			return false
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(raw, &tm); err != nil {
			return false
		}
		switch {
		case tm.Kind == "CustomResourceDefinition" && strings.HasPrefix(tm.APIVersion, "apiextensions.k8s.io/"):
			crds++
		case tm.Kind == "" && len(bytes.TrimSpace(stripComments(raw))) == 0:
		default:
			return false
		}
	}
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}
