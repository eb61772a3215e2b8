// Package dir is the local-mode source: a directory of Kubernetes objects
// as multi-document YAML (or JSON) files, the same objects a cluster would
// hold (--config-dir). It is read at start and polled for changes.
//
// Objects understood: v1 Namespace, Pod, Service; discovery.k8s.io/v1
// EndpointSlice; gateway.networking.k8s.io/v1 HTTPRoute and GRPCRoute;
// weftmesh.io/v1alpha1 TrafficPolicy and AuthorizationPolicy. They are
// converted by source/convert, exactly as source/kube converts them, so a
// directory and a cluster with the same objects give the same model. Other
// kinds are ignored; a known kind at another API version is an error.
//
// What a cluster would fill in is given by hand or defaulted here: a
// namespaced object without metadata.namespace is in "default"; a Pod's
// spec.nodeName and status.podIP are written in the file (no scheduler or
// kubelet runs), and its uid defaults to "local-<namespace>-<name>"; a
// Service's clusterIP is written in the file (no allocator runs). Schema
// defaults and validation are applied by source/convert, as an apiserver
// would: note that a route's parentRef to a Service must say group: ""
// (the Gateway API default group is gateway.networking.k8s.io).
//
// EndpointSlices: a Service with a selector and no EndpointSlice in the
// directory (label kubernetes.io/service-name) gets slices derived from the
// directory's Pods, named "<service>-derived" (see
// convert.DeriveEndpointSlices). Write EndpointSlices by hand for a Service
// without a selector, or to control endpoints exactly.
//
// A file that does not parse, or an object its schema would reject, is
// reported with file name and line (the line of the error when the YAML
// parser knows it, else the first line of the document), and the whole
// directory keeps its last good state until every file is good again: a
// half-applied directory is never served.
package dir

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source"
)

// DefaultPollInterval is used by Run when it is given no interval.
const DefaultPollInterval = time.Second

// Source reads a directory and keeps its last good Snapshot.
type Source struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex // guards the fields below
	snap    *model.Snapshot
	digest  [32]byte
	lastErr error
	changed chan struct{} // closed and replaced when snap changes
}

var _ source.Source = (*Source)(nil)

// New reads dir once; it fails when the directory cannot be read or a file
// is bad, since there is no good state to fall back on yet. A nil log means
// slog.Default().
func New(dir string, log *slog.Logger) (*Source, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Source{dir: dir, log: log, changed: make(chan struct{})}
	if _, err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Snapshot returns the last good state. It is never modified afterwards.
func (s *Source) Snapshot() *model.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Changed returns a channel closed when the next new state is installed.
func (s *Source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// WaitForSync returns at once: New has already read the directory.
func (s *Source) WaitForSync(context.Context) error { return nil }

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

// Run polls the directory every interval (DefaultPollInterval when it is
// not positive) until ctx ends. A reload that fails is logged once per
// distinct error, and the last good state stays.
func (s *Source) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var logged string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := s.Reload()
		switch {
		case err != nil:
			if err.Error() != logged {
				s.log.Error("config dir has errors; keeping the last good state", "dir", s.dir, "err", err)
				logged = err.Error()
			}
		case changed:
			logged = ""
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
	snap, err := build(files)
	if err != nil {
		return false, s.fail(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap, s.digest, s.lastErr = snap, digest, nil
	close(s.changed)
	s.changed = make(chan struct{})
	return true, nil
}

func (s *Source) fail(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastErr = err
	return err
}

// errNoKind is returned for a document without apiVersion or kind.
var errNoKind = errors.New("object has no apiVersion or kind")
