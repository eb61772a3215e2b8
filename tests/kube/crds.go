package kube

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
	"runtime"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"
)

const (
	// crdReadyTimeout bounds ApplyCRDs' wait for Established when ctx has
	// no deadline of its own.
	crdReadyTimeout = 60 * time.Second
	crdPollInterval = 100 * time.Millisecond
)

// crdDoc is one CustomResourceDefinition read from a file.
type crdDoc struct {
	source string // "path (document N)", for error messages
	crd    *apiextensionsv1.CustomResourceDefinition
}

// ChartCRDDirs are the Helm chart's CRD directories, relative to the
// repository root: Weft's own CRDs (crds/, which Helm installs) and the
// Gateway API's HTTPRoute and GRPCRoute (files/gateway-api, which a template
// installs when the cluster lacks them).
var ChartCRDDirs = []string{"charts/weft/crds", "charts/weft/files/gateway-api"}

// ApplyChartCRDs applies every CRD the chart ships (ChartCRDDirs) with
// ApplyCRDs: what a Weft control plane needs to run.
func (c *Cluster) ApplyChartCRDs(ctx context.Context) error {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return errors.New("apply chart CRDs: cannot locate the repository")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dirs := make([]string, len(ChartCRDDirs))
	for i, d := range ChartCRDDirs {
		dirs[i] = filepath.Join(root, filepath.FromSlash(d))
	}
	return c.ApplyCRDs(ctx, dirs...)
}

// ApplyCRDs creates, or updates when it already exists, every
// CustomResourceDefinition in the YAML (or JSON) files under each of dirs, and waits
// until each is Established and its resources are served by discovery.
//
// Files are found recursively (extensions .yaml, .yml and .json), read in
// lexical order, and may hold several documents separated by "---"; empty
// documents are skipped. Every document must be an
// apiextensions.k8s.io/v1 CustomResourceDefinition with no unknown fields,
// as Helm expects in a chart's crds/ directory: anything else is an error
// and nothing is applied. A CRD that the apiserver refuses, or that is not
// Established in time (its names conflict with another CRD, say), is
// reported with its conditions.
//
// When ctx has no deadline the wait is bounded by 60s. After an update of
// a CRD that was already Established, the apiserver may go on validating
// with the previous schema for a moment; tests that change a CRD's schema
// should use a fresh cluster.
func (c *Cluster) ApplyCRDs(ctx context.Context, dirs ...string) error {
	if len(dirs) == 0 {
		return errors.New("apply CRDs: no directory given")
	}
	var docs []crdDoc
	for _, dir := range dirs {
		d, err := readCRDs(dir)
		if err != nil {
			return err
		}
		if len(d) == 0 {
			return fmt.Errorf("apply CRDs: no CustomResourceDefinition found under %s", dir)
		}
		docs = append(docs, d...)
	}
	cs, err := apiextensionsclient.NewForConfig(rest.CopyConfig(c.Config))
	if err != nil {
		return fmt.Errorf("apply CRDs: apiextensions client: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(c.Config))
	if err != nil {
		return fmt.Errorf("apply CRDs: discovery client: %w", err)
	}
	crds := cs.ApiextensionsV1().CustomResourceDefinitions()

	for _, d := range docs {
		if err := applyCRD(ctx, crds, d.crd); err != nil {
			return fmt.Errorf("apply CRD %s from %s: %w", d.crd.Name, d.source, err)
		}
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, crdReadyTimeout)
		defer cancel()
	}
	var errs []error
	for _, d := range docs {
		if err := waitCRDServed(ctx, crds, dc, d.crd); err != nil {
			errs = append(errs, fmt.Errorf("CRD %s from %s: %w", d.crd.Name, d.source, err))
		}
	}
	return errors.Join(errs...)
}

// applyCRD creates crd or, if one of that name exists, replaces its spec,
// labels and annotations.
func applyCRD(ctx context.Context, crds crdClient, crd *apiextensionsv1.CustomResourceDefinition) error {
	_, err := crds.Create(ctx, crd.DeepCopy(), metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec = *crd.Spec.DeepCopy()
		cur.Labels = crd.Labels
		cur.Annotations = crd.Annotations
		_, err = crds.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// crdClient is the part of the CRD client applyCRD and waitCRDServed use.
type crdClient interface {
	Create(context.Context, *apiextensionsv1.CustomResourceDefinition, metav1.CreateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Update(context.Context, *apiextensionsv1.CustomResourceDefinition, metav1.UpdateOptions) (*apiextensionsv1.CustomResourceDefinition, error)
	Get(context.Context, string, metav1.GetOptions) (*apiextensionsv1.CustomResourceDefinition, error)
}

// waitCRDServed waits until crd is Established and discovery lists its
// plural for every served version. It gives up at once when the apiserver
// rejects the CRD's names, since that never heals by itself.
func waitCRDServed(ctx context.Context, crds crdClient, dc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) error {
	var last string
	for {
		cur, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
		switch {
		case err != nil:
			last = "get: " + err.Error()
		case conditionIs(cur, apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionFalse):
			return fmt.Errorf("names not accepted: %s", describeConditions(cur))
		case !conditionIs(cur, apiextensionsv1.Established, apiextensionsv1.ConditionTrue):
			last = "not Established: " + describeConditions(cur)
		default:
			missing := unservedVersions(dc, cur)
			if len(missing) == 0 {
				return nil
			}
			last = "Established, but discovery does not list it yet for " + strings.Join(missing, ", ")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready (%s): %w", last, ctx.Err())
		case <-time.After(crdPollInterval):
		}
	}
}

// unservedVersions returns group/version for each served version of crd
// whose discovery document does not list crd's plural yet.
func unservedVersions(dc discovery.DiscoveryInterface, crd *apiextensionsv1.CustomResourceDefinition) []string {
	var missing []string
	for _, v := range crd.Spec.Versions {
		if !v.Served {
			continue
		}
		gv := crd.Spec.Group + "/" + v.Name
		list, err := dc.ServerResourcesForGroupVersion(gv)
		if err != nil || !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool {
			return r.Name == crd.Spec.Names.Plural
		}) {
			missing = append(missing, gv)
		}
	}
	return missing
}

func conditionIs(crd *apiextensionsv1.CustomResourceDefinition, typ apiextensionsv1.CustomResourceDefinitionConditionType, status apiextensionsv1.ConditionStatus) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == typ {
			return c.Status == status
		}
	}
	return false
}

// describeConditions renders the CRD's conditions as
// "Type=Status (Reason: Message); ...", or "no conditions yet".
func describeConditions(crd *apiextensionsv1.CustomResourceDefinition) string {
	if len(crd.Status.Conditions) == 0 {
		return "no conditions yet"
	}
	parts := make([]string, 0, len(crd.Status.Conditions))
	for _, c := range crd.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

// readCRDs reads every CRD document under dir, in lexical file order.
func readCRDs(dir string) ([]crdDoc, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("read CRDs: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("read CRDs: %s is not a directory", dir)
	}
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read CRDs under %s: %w", dir, err)
	}
	slices.Sort(files) // WalkDir is lexical per directory; make the whole order explicit

	var docs []crdDoc
	seen := map[string]string{} // CRD name -> source
	for _, path := range files {
		fileDocs, err := readCRDFile(path)
		if err != nil {
			return nil, err
		}
		for _, d := range fileDocs {
			if prev, ok := seen[d.crd.Name]; ok {
				return nil, fmt.Errorf("read CRDs: %s defines %s again (first in %s)", d.source, d.crd.Name, prev)
			}
			seen[d.crd.Name] = d.source
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// readCRDFile splits one file into documents and decodes each as a CRD.
func readCRDFile(path string) ([]crdDoc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read CRDs: %w", err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs []crdDoc
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read CRDs: %s (document %d): %w", path, n, err)
		}
		source := fmt.Sprintf("%s (document %d)", path, n)
		crd, err := decodeCRD(raw)
		if err != nil {
			return nil, fmt.Errorf("read CRDs: %s: %w", source, err)
		}
		if crd != nil {
			docs = append(docs, crdDoc{source: source, crd: crd})
		}
	}
}

// decodeCRD decodes one YAML or JSON document; it returns nil, nil for a
// document with no content (only comments or whitespace).
func decodeCRD(raw []byte) (*apiextensionsv1.CustomResourceDefinition, error) {
	var probe map[string]any
	if err := yaml.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if len(probe) == 0 {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	want := apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition")
	if tm.GroupVersionKind() != want {
		return nil, fmt.Errorf("apiVersion %q kind %q is not a CustomResourceDefinition (%s)", tm.APIVersion, tm.Kind, want.GroupVersion())
	}
	crd := new(apiextensionsv1.CustomResourceDefinition)
	if err := yaml.UnmarshalStrict(bytes.TrimSpace(raw), crd); err != nil {
		return nil, fmt.Errorf("decode CustomResourceDefinition: %w", err)
	}
	if crd.Name == "" {
		return nil, errors.New("CustomResourceDefinition has no metadata.name")
	}
	return crd, nil
}
