package dir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source/convert"
)

type file struct {
	name string
	data []byte
}

// readFiles returns the .yaml, .yml and .json files under dir, sorted by
// path; directories whose name starts with "." are skipped.
func readFiles(dir string) ([]file, error) {
	var out []file
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml", ".json":
		default:
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out = append(out, file{name: path, data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read config dir: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// state is what the documents read so far hold.
type state struct {
	snap   *model.Snapshot
	pods   []*corev1.Pod     // as written, for deriving EndpointSlices
	sliced map[string]bool   // namespace/service of every EndpointSlice given
	seen   map[string]string // "Kind namespace/name" -> where it was first defined
}

// build reads every document of every file into a new Snapshot.
func build(files []file) (*model.Snapshot, error) {
	st := &state{snap: model.NewSnapshot(), sliced: map[string]bool{}, seen: map[string]string{}}
	var errs []error
	for _, f := range files {
		for _, d := range splitDocuments(f.data) {
			if len(bytes.TrimSpace(stripComments(d.data))) == 0 {
				continue
			}
			where := fmt.Sprintf("%s:%d", f.name, d.line)
			if err := st.add(d.data, where); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", f.name, d.line+lineOffset(err), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := st.deriveEndpointSlices(); err != nil {
		return nil, err
	}
	return st.snap, nil
}

// document is one YAML document of a file and the line it starts on.
type document struct {
	line int
	data []byte
}

// splitDocuments splits multi-document YAML on "---" lines.
func splitDocuments(b []byte) []document {
	var docs []document
	start, cur := 1, []byte{}
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, l := range lines {
		if t := bytes.TrimRight(l, " \t\r\n"); bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			docs = append(docs, document{start, cur})
			start, cur = i+2, []byte{}
			continue
		}
		cur = append(cur, l...)
	}
	return append(docs, document{start, cur})
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// kinds maps each understood kind to its one supported apiVersion.
var kinds = map[string]string{
	"Namespace":           "v1",
	"Pod":                 "v1",
	"Service":             "v1",
	"EndpointSlice":       "discovery.k8s.io/v1",
	"HTTPRoute":           "gateway.networking.k8s.io/v1",
	"GRPCRoute":           "gateway.networking.k8s.io/v1",
	"TrafficPolicy":       "weftmesh.io/v1alpha1",
	"AuthorizationPolicy": "weftmesh.io/v1alpha1",
}

// add decodes one document and adds it to the state; where is its
// file:line, for duplicate reports.
func (st *state) add(data []byte, where string) error {
	var tm typeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return err
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		return errNoKind
	}
	want, known := kinds[tm.Kind]
	if !known {
		return nil // not a kind the mesh reads
	}
	if tm.APIVersion != want {
		if group(tm.APIVersion) != group(want) {
			return nil // same kind name in another API group: not ours
		}
		return fmt.Errorf("%s: apiVersion %s is not supported, use %s", tm.Kind, tm.APIVersion, want)
	}
	switch tm.Kind {
	case "Namespace":
		ns, err := decode[corev1.Namespace](data)
		if err != nil {
			return err
		}
		if ns.Name == "" {
			return errors.New("Namespace has no metadata.name")
		}
		if err := st.once("Namespace", ns.Name, where); err != nil {
			return err
		}
		st.snap.Namespaces[ns.Name] = convert.Namespace(ns)
	case "Pod":
		p, err := decode[corev1.Pod](data)
		if err != nil {
			return err
		}
		if err := st.named("Pod", &p.Name, &p.Namespace, where); err != nil {
			return err
		}
		if p.UID == "" {
			p.UID = types.UID("local-" + p.Namespace + "-" + p.Name)
		}
		st.pods = append(st.pods, p)
		st.snap.Pods[p.Namespace+"/"+p.Name] = convert.Pod(p)
	case "Service":
		return addObject(st, data, where, "Service", func(o *corev1.Service) (*string, *string) { return &o.Name, &o.Namespace },
			convert.Service, st.snap.Services, func(m *model.Service) string { return m.Key() })
	case "EndpointSlice":
		return addObject(st, data, where, "EndpointSlice", func(o *discoveryv1.EndpointSlice) (*string, *string) { return &o.Name, &o.Namespace },
			func(o *discoveryv1.EndpointSlice) (*model.EndpointSlice, error) {
				m, err := convert.EndpointSlice(o)
				if err == nil {
					st.sliced[m.Namespace+"/"+m.Service] = true
				}
				return m, err
			}, st.snap.EndpointSlices, func(m *model.EndpointSlice) string { return m.Key() })
	case "HTTPRoute":
		return addObject(st, data, where, "HTTPRoute", func(o *gwapiv1.HTTPRoute) (*string, *string) { return &o.Name, &o.Namespace },
			convert.HTTPRoute, st.snap.Routes, routeKey)
	case "GRPCRoute":
		return addObject(st, data, where, "GRPCRoute", func(o *gwapiv1.GRPCRoute) (*string, *string) { return &o.Name, &o.Namespace },
			convert.GRPCRoute, st.snap.Routes, routeKey)
	case "TrafficPolicy":
		return addObject(st, data, where, "TrafficPolicy", func(o *v1alpha1.TrafficPolicy) (*string, *string) { return &o.Name, &o.Namespace },
			convert.TrafficPolicy, st.snap.TrafficPolicies, func(m *model.TrafficPolicy) string { return m.Key() })
	case "AuthorizationPolicy":
		return addObject(st, data, where, "AuthorizationPolicy", func(o *v1alpha1.AuthorizationPolicy) (*string, *string) { return &o.Name, &o.Namespace },
			convert.AuthorizationPolicy, st.snap.AuthorizationPolicies, func(m *model.AuthorizationPolicy) string { return m.Key() })
	}
	return nil
}

func routeKey(r *model.Route) string { return model.RouteKey(r.Kind, r.Namespace, r.Name) }

// addObject decodes a namespaced object of type T, defaults its namespace,
// converts it and stores it in dst under key.
func addObject[T any, M any](st *state, data []byte, where, kind string, names func(*T) (name, namespace *string),
	conv func(*T) (*M, error), dst map[string]*M, key func(*M) string) error {
	obj, err := decode[T](data)
	if err != nil {
		return err
	}
	name, namespace := names(obj)
	if err := st.named(kind, name, namespace, where); err != nil {
		return err
	}
	m, err := conv(obj)
	if err != nil {
		return err
	}
	dst[key(m)] = m
	return nil
}

// named checks the name, defaults the namespace and rejects duplicates.
func (st *state) named(kind string, name, namespace *string, where string) error {
	if *name == "" {
		return fmt.Errorf("%s has no metadata.name", kind)
	}
	if *namespace == "" {
		*namespace = "default"
	}
	return st.once(kind, *namespace+"/"+*name, where)
}

func (st *state) once(kind, key, where string) error {
	id := kind + " " + key
	if first, dup := st.seen[id]; dup {
		return fmt.Errorf("%s defined twice (first at %s)", id, first)
	}
	st.seen[id] = where
	return nil
}

// deriveEndpointSlices adds slices for the Services that have none.
func (st *state) deriveEndpointSlices() error {
	keys := make([]string, 0, len(st.snap.Services))
	for k := range st.snap.Services {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if st.sliced[k] {
			continue
		}
		for _, es := range convert.DeriveEndpointSlices(st.snap.Services[k], st.pods) {
			if _, taken := st.snap.EndpointSlices[es.Key()]; taken {
				errs = append(errs, fmt.Errorf("EndpointSlice %s: the name is needed for the slice derived for Service %s; rename it", es.Key(), k))
				continue
			}
			st.snap.EndpointSlices[es.Key()] = es
		}
	}
	return errors.Join(errs...)
}

func decode[T any](data []byte) (*T, error) {
	var v T
	if err := yaml.UnmarshalStrict(data, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// group returns the API group of an apiVersion ("" for the core group).
func group(apiVersion string) string {
	if i := strings.LastIndex(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// lineOffset extracts "line N" from a YAML error so the reported line is
// the line in the file, not in the document.
func lineOffset(err error) int {
	var ie *convert.InvalidError
	if errors.As(err, &ie) {
		return 0 // field paths, not lines; the document line is the best we have
	}
	var n int
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		if _, scanErr := fmt.Sscanf(msg[i:], "line %d", &n); scanErr == nil && n > 0 {
			return n - 1
		}
	}
	return 0
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
			out = append(out, '\n')
		}
	}
	return out
}
