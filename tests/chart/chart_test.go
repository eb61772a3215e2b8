package chart

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/weftmesh/weft/tests/kube"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	release   = "weft"
	namespace = "weft-system"
)

var (
	chartDir = filepath.Join("..", "..", "charts", "weft")
	cluster  *kube.Cluster
)

// cases are the value sets every test renders: name -> values file ("" =
// the chart's defaults). Golden file: testdata/<name>.golden.yaml.
var cases = []struct{ name, values string }{
	{"default", ""},
	{"tracing", filepath.Join("testdata", "tracing-values.yaml")},
	{"no-cni", filepath.Join("testdata", "no-cni-values.yaml")},
}

func TestMain(m *testing.M) { os.Exit(kube.Main(m, &cluster)) }

// helmBin finds the pinned helm, or skips t loudly.
func helmBin(t *testing.T) string {
	t.Helper()
	p, err := kube.HelmPath()
	if err != nil {
		t.Skipf("!!! SKIPPING: %v", err)
	}
	return p
}

// helm runs the helm binary and returns its standard output.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := helmBin(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Keep helm away from the user's repositories, plugins and caches.
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+tmp, "HELM_CONFIG_HOME="+tmp, "HELM_DATA_HOME="+tmp)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

func render(t *testing.T, values string) []byte {
	t.Helper()
	args := []string{"template", release, chartDir, "--namespace", namespace}
	if values != "" {
		args = append(args, "--values", values)
	}
	return helm(t, args...)
}

func TestLint(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, strict := range []bool{false, true} {
				args := []string{"lint", chartDir, "--namespace", namespace}
				if strict {
					args = append(args, "--strict")
				}
				if c.values != "" {
					args = append(args, "--values", c.values)
				}
				helm(t, args...)
			}
		})
	}
}

func TestTemplateGolden(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := splitGatewayCRDs(render(t, c.values))
			golden := filepath.Join("testdata", c.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./tests/chart/ -run TestTemplateGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("helm template with %s differs from %s (rerun with -update and review the diff):\n%s",
					orDefault(c.values), golden, lineDiff(string(want), string(got)))
			}
		})
	}
}

func orDefault(values string) string {
	if values == "" {
		return "the default values"
	}
	return values
}

// lineDiff shows the first differing lines of want and got.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  got:  %q\n  want: %q", i+1, gl, wl)
		}
	}
	return "(no line differs)"
}

// objects decodes a multi-document YAML stream into objects, skipping empty documents.
func objects(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decode rendered manifest: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// TestServerDryRun installs the chart's CRDs for real, then applies every
// rendered object with a server-side dry-run: the apiserver must accept
// each one (schema with strict field validation, defaulting, admission,
// RBAC escalation checks).
func TestServerDryRun(t *testing.T) {
	a := newApplier(t)
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			objs := objects(t, render(t, cs.values))
			if len(objs) == 0 {
				t.Fatal("helm template rendered no objects")
			}
			for _, o := range objs {
				if err := a.dryRun(t, o); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestServerDryRunRefuses makes sure the dry-run is not vacuous: a
// rendered object with an unknown field or an invalid value is refused.
func TestServerDryRunRefuses(t *testing.T) {
	a := newApplier(t)
	for _, tc := range []struct{ name, old, new string }{
		{"unknown field", "\n      hostNetwork: true\n", "\n      hostNetwork: true\n      bogusField: 1\n"},
		{"invalid value", "minAvailable: 1", "minAvailable: -5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := string(render(t, ""))
			if !strings.Contains(out, tc.old) {
				t.Fatalf("rendered chart has no %q to break", tc.old)
			}
			var refused int
			for _, o := range objects(t, []byte(strings.Replace(out, tc.old, tc.new, 1))) {
				if a.dryRun(t, o) != nil {
					refused++
				}
			}
			if refused != 1 {
				t.Errorf("%d objects refused, want 1", refused)
			}
		})
	}
}

// applier dry-runs objects against the test cluster, with the chart's
// CRDs installed and the release namespace created.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(t *testing.T) *applier {
	t.Helper()
	c := kube.Require(t, cluster)
	helmBin(t) // skip before touching the cluster when there is no helm
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := c.ApplyChartCRDs(ctx); err != nil {
		t.Fatalf("install the chart's CRDs: %v", err)
	}
	_, err := c.Clientset().CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", namespace, err)
	}
	cfg := rest.CopyConfig(c.Config)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}
}

// dryRun applies o server-side with dryRun=All and strict field validation.
func (a *applier) dryRun(t *testing.T, o *unstructured.Unstructured) error {
	t.Helper()
	gvk := o.GroupVersionKind()
	id := fmt.Sprintf("%s %s/%s", gvk.Kind, o.GetNamespace(), o.GetName())
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("%s: no such resource on the apiserver: %w", id, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() != namespace {
			return fmt.Errorf("%s: namespace %q, want the release namespace %q", id, o.GetNamespace(), namespace)
		}
		ri = a.dyn.Resource(m.Resource).Namespace(namespace)
	}
	body, err := o.MarshalJSON()
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	force := true
	_, err = ri.Patch(t.Context(), o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
		DryRun: []string{metav1.DryRunAll}, FieldManager: "weft-chart-test", Force: &force, FieldValidation: "Strict",
	})
	if err != nil {
		return fmt.Errorf("%s: server-side dry-run apply refused: %w", id, err)
	}
	return nil
}
