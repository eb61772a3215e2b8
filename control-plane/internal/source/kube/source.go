package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source"
)

// DefaultCRDCheckInterval is how often a Source looks again for custom
// resources whose CRD was not installed.
const DefaultCRDCheckInterval = 30 * time.Second

// Log keys.
const (
	logKind   = "kind"
	logObject = "object"
	logErr    = "err"
)

// SourceConfig configures a Source.
type SourceConfig struct {
	// REST reaches the apiserver. Required.
	REST *rest.Config
	// Log receives one line per missing or newly found CRD and per object
	// that fails conversion. nil means slog.Default().
	Log *slog.Logger
	// CRDCheckInterval is how often kinds whose CRD is not installed (Gateway
	// API HTTPRoute/GRPCRoute, weftmesh.io policies) are looked for again;
	// when one appears it is watched from then on. 0 means
	// DefaultCRDCheckInterval.
	CRDCheckInterval time.Duration
}

// Source watches a cluster with shared informers — Namespaces, Pods,
// Services and EndpointSlices (client-go), HTTPRoutes and GRPCRoutes
// (Gateway API clientset) and TrafficPolicies and AuthorizationPolicies
// (dynamic client, converted from unstructured) — and keeps a model built
// with source/convert.
//
// Informer events update a working copy of the model at once; Snapshot
// publishes a copy of it (cheap: the maps are copied, the objects shared).
// An event that leaves an object's model unchanged (a status write, a pod
// condition the model does not carry) signals no change.
//
// A kind whose CRD is not installed is skipped, logged once, and looked for
// again every CRDCheckInterval. An object that fails conversion (content its
// schema should have refused) is logged and left out of the model.
type Source struct {
	cfg       SourceConfig
	log       *slog.Logger
	discovery discoveryClient
	kinds     []*kind

	synced  chan struct{} // closed when the first sync is done
	stopped chan struct{} // closed when Run returns

	mu      sync.Mutex // guards the fields below
	work    *model.Snapshot
	pub     *model.Snapshot
	dirty   bool
	changed chan struct{} // closed and replaced on every change
	running bool
}

var _ source.Source = (*Source)(nil)

// discoveryClient is the part of discovery a Source uses.
type discoveryClient interface {
	ServerResourcesForGroupVersion(groupVersion string) (*metav1.APIResourceList, error)
}

// NewSource builds the clients; it does no I/O.
func NewSource(cfg SourceConfig) (*Source, error) {
	if cfg.REST == nil {
		return nil, errors.New("kube source: no REST config")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.CRDCheckInterval <= 0 {
		cfg.CRDCheckInterval = DefaultCRDCheckInterval
	}
	core, err := kubernetes.NewForConfig(cfg.REST)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	gw, err := gwclient.NewForConfig(cfg.REST)
	if err != nil {
		return nil, fmt.Errorf("gateway API client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg.REST)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return &Source{
		cfg:       cfg,
		log:       cfg.Log,
		discovery: core.Discovery(),
		kinds:     allKinds(core, gw, dyn),
		synced:    make(chan struct{}),
		stopped:   make(chan struct{}),
		work:      model.NewSnapshot(),
		pub:       model.NewSnapshot(),
		changed:   make(chan struct{}),
	}, nil
}

// Run starts the informers and watches until ctx ends. It returns an error
// only when called twice.
func (s *Source) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("kube source: Run called twice")
	}
	s.running = true
	s.mu.Unlock()
	defer close(s.stopped)

	var started []cache.InformerSynced
	var missing []*kind
	for _, k := range s.kinds {
		if k.optional && !s.served(k) {
			missing = append(missing, k)
			continue
		}
		started = append(started, s.start(ctx, k))
	}
	if !cache.WaitForCacheSync(ctx.Done(), started...) {
		return nil // ctx ended first
	}
	close(s.synced)

	t := time.NewTicker(s.cfg.CRDCheckInterval)
	defer t.Stop()
	for len(missing) > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		still := missing[:0]
		for _, k := range missing {
			if !s.served(k) {
				still = append(still, k)
				continue
			}
			s.log.Info("CRD is now installed; watching it", logKind, k.name)
			s.start(ctx, k)
		}
		missing = still
	}
	<-ctx.Done()
	return nil
}

// served reports whether the apiserver serves k's resource. It logs the
// first time it finds the resource missing.
func (s *Source) served(k *kind) bool {
	list, err := s.discovery.ServerResourcesForGroupVersion(k.gvr.GroupVersion().String())
	if err == nil {
		for _, r := range list.APIResources {
			if r.Name == k.gvr.Resource {
				return true
			}
		}
	}
	if !k.reportedMissing {
		k.reportedMissing = true
		msg := "CRD is not installed; ignoring this kind until it is"
		if err != nil && !apierrors.IsNotFound(err) {
			msg = "cannot tell whether the CRD is installed; ignoring this kind until it can"
		}
		s.log.Warn(msg, logKind, k.name, "resource", k.gvr.String(), logErr, err)
	}
	return false
}

// start runs k's informer and returns its HasSynced.
func (s *Source) start(ctx context.Context, k *kind) cache.InformerSynced {
	inf := k.newInformer()
	// Managed fields are large and never read; keep them out of the cache.
	_ = inf.SetTransform(stripManagedFields)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.upsert(k, obj) },
		UpdateFunc: func(_, obj any) { s.upsert(k, obj) },
		DeleteFunc: func(obj any) { s.remove(k, obj) },
	})
	go inf.RunWithContext(ctx)
	return inf.HasSynced
}

func (s *Source) upsert(k *kind, obj any) {
	m, err := meta.Accessor(obj)
	if err != nil {
		s.log.Error("informer delivered an object without metadata", logKind, k.name, logErr, err)
		return
	}
	key := k.key(m.GetNamespace(), m.GetName())
	v, err := k.convert(obj)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Warn("object left out of the mesh configuration", logKind, k.name, logObject, key, logErr, err)
		if k.remove(s.work, key) {
			s.changedLocked()
		}
		return
	}
	if old, ok := k.get(s.work, key); ok && reflect.DeepEqual(old, v) {
		return
	}
	k.put(s.work, key, v)
	s.changedLocked()
}

func (s *Source) remove(k *kind, obj any) {
	var namespace, name string
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		var err error
		if namespace, name, err = cache.SplitMetaNamespaceKey(t.Key); err != nil {
			s.log.Error("bad tombstone key", logKind, k.name, logObject, t.Key, logErr, err)
			return
		}
	} else if m, err := meta.Accessor(obj); err == nil {
		namespace, name = m.GetNamespace(), m.GetName()
	} else {
		s.log.Error("informer deleted an object without metadata", logKind, k.name, logErr, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k.remove(s.work, k.key(namespace, name)) {
		s.changedLocked()
	}
}

// changedLocked marks the working copy changed and wakes the waiters.
func (s *Source) changedLocked() {
	s.dirty = true
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitForSync blocks until every informer started by Run has listed its
// objects (kinds whose CRD is missing are not waited for), ctx ends, or Run
// returns first.
func (s *Source) WaitForSync(ctx context.Context) error {
	select {
	case <-s.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		select {
		case <-s.synced:
			return nil
		default:
			return errors.New("kube source stopped before its first sync")
		}
	}
}

// Snapshot returns the current state; it is never modified afterwards.
func (s *Source) Snapshot() *model.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty {
		w := s.work
		s.pub = &model.Snapshot{
			Namespaces:            maps.Clone(w.Namespaces),
			Pods:                  maps.Clone(w.Pods),
			Services:              maps.Clone(w.Services),
			EndpointSlices:        maps.Clone(w.EndpointSlices),
			Routes:                maps.Clone(w.Routes),
			TrafficPolicies:       maps.Clone(w.TrafficPolicies),
			AuthorizationPolicies: maps.Clone(w.AuthorizationPolicies),
		}
		s.dirty = false
	}
	return s.pub
}

// Changed returns a channel closed at the next change.
func (s *Source) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
