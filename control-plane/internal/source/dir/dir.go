// Package dir is the local-mode source: a directory of Kubernetes objects
// as multi-document YAML (or JSON) files, the same objects a cluster would
// hold. It is read at start and polled for changes.
//
// A file that does not parse is reported with its name and line, and the
// whole directory keeps its last good state until every file parses again:
// a half-applied directory is never served.
//
// Objects understood so far: v1 Namespace and Pod (with spec.nodeName and
// status.podIP set by hand, since no scheduler or kubelet runs). Other
// kinds are ignored.
package dir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// Snapshot is the content of the directory at one moment.
type Snapshot struct {
	Namespaces map[string]*model.Namespace
	Pods       map[string]*model.Pod // by namespace/name
}

// Source reads a directory and keeps its last good Snapshot.
type Source struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex // guards the fields below
	snap    *Snapshot
	digest  [32]byte
	lastErr error
}

// New reads dir once; it fails when the directory cannot be read or a file
// does not parse, since there is no good state to fall back on yet.
func New(dir string, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Source{dir: dir, log: log}
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Snapshot returns the last good state.
func (s *Source) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// LastError is the error of the latest reload, nil when it was good.
func (s *Source) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Pod implements identity.Pods.
func (s *Source) Pod(_ context.Context, namespace, name string) (*model.Pod, *model.Namespace, error) {
	snap := s.Snapshot()
	p, ok := snap.Pods[namespace+"/"+name]
	if !ok {
		return nil, nil, fmt.Errorf("pod %s/%s: %w", namespace, name, model.ErrNotFound)
	}
	return p, snap.Namespaces[namespace], nil
}

// Run polls the directory every interval until ctx ends.
func (s *Source) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := s.Reload()
		switch {
		case err != nil:
			s.log.Error("config dir has errors; keeping the last good state", "dir", s.dir, "err", err)
		case changed:
			s.log.Info("config dir reloaded", "dir", s.dir)
		}
	}
}

// Reload reads the directory if anything changed. It reports whether a new
// state was installed; on error the previous state stays.
func (s *Source) Reload() (bool, error) {
	files, err := readFiles(s.dir)
	if err != nil {
		return false, s.fail(err)
	}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	var digest [32]byte
	copy(digest[:], h.Sum(nil))
	s.mu.Lock()
	same := s.snap != nil && digest == s.digest && s.lastErr == nil
	s.mu.Unlock()
	if same {
		return false, nil
	}
	snap := &Snapshot{Namespaces: map[string]*model.Namespace{}, Pods: map[string]*model.Pod{}}
	var errs []error
	for _, f := range files {
		errs = append(errs, parseFile(f, snap)...)
	}
	if err := errors.Join(errs...); err != nil {
		return false, s.fail(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap, s.digest, s.lastErr = snap, digest, nil
	return true, nil
}

func (s *Source) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	return err
}

type file struct {
	name string
	data []byte
}

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

func parseFile(f file, snap *Snapshot) []error {
	var errs []error
	for _, d := range splitDocuments(f.data) {
		if len(bytes.TrimSpace(stripComments(d.data))) == 0 {
			continue
		}
		if err := parseDocument(d.data, snap); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", f.name, d.line+lineOffset(err), err))
		}
	}
	return errs
}

func parseDocument(data []byte, snap *Snapshot) error {
	var tm typeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return err
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		return errors.New("object has no apiVersion or kind")
	}
	switch {
	case tm.APIVersion == "v1" && tm.Kind == "Namespace":
		var ns corev1.Namespace
		if err := yaml.UnmarshalStrict(data, &ns); err != nil {
			return err
		}
		if ns.Name == "" {
			return errors.New("Namespace has no metadata.name")
		}
		snap.Namespaces[ns.Name] = &model.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}
	case tm.APIVersion == "v1" && tm.Kind == "Pod":
		var p corev1.Pod
		if err := yaml.UnmarshalStrict(data, &p); err != nil {
			return err
		}
		if p.Name == "" {
			return errors.New("Pod has no metadata.name")
		}
		if p.Namespace == "" {
			p.Namespace = "default"
		}
		uid := string(p.UID)
		if uid == "" {
			uid = "local-" + p.Namespace + "-" + p.Name
		}
		mp := &model.Pod{Namespace: p.Namespace, Name: p.Name, UID: uid, NodeName: p.Spec.NodeName,
			ServiceAccount: p.Spec.ServiceAccountName, IP: p.Status.PodIP, HostNetwork: p.Spec.HostNetwork,
			Labels: p.Labels, Annotations: p.Annotations}
		if _, dup := snap.Pods[mp.Key()]; dup {
			return fmt.Errorf("pod %s defined twice", mp.Key())
		}
		snap.Pods[mp.Key()] = mp
	}
	return nil
}

// lineOffset extracts "line N" from a YAML error so the reported line is
// the line in the file, not in the document.
func lineOffset(err error) int {
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
