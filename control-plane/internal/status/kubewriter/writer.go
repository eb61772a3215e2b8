// Package kubewriter writes the status computed by package status to the
// Kubernetes API: status.parents of HTTPRoute and GRPCRoute, and
// status.ancestors of TrafficPolicy and AuthorizationPolicy. Only the
// leader replica calls it.
//
// It owns only the entries whose controllerName is weftmesh.io/mesh: entries
// of other controllers (a gateway's, say) are left as they are. Each parentRef
// is copied exactly as written in spec (Flagger and Argo Rollouts compare
// them), conditions carry the object's current generation, and a condition's
// lastTransitionTime changes only when its status does. An object whose
// status would not change is not written.
package kubewriter

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/status"
)

// Writer writes status. Now defaults to time.Now.
//
// It remembers what it computed for each object at its last successful
// write, so an object whose computed status did not change since is not
// read again: the status loop runs on every model change (every pod event),
// and most changes touch no route or policy. Reset forgets, for a new term
// of leadership.
type Writer struct {
	Gateway gwclient.Interface
	Dynamic dynamic.Interface
	Now     func() time.Time

	mu   sync.Mutex        // guards last
	last map[string]string // object key -> fingerprint of the status written
}

// Reset forgets what was written, so the next Write checks every object.
func (w *Writer) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = nil
}

// seen reports whether key was last written with fingerprint fp.
func (w *Writer) seen(key, fp string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[key] == fp
}

func (w *Writer) remember(key, fp string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[string]string{}
	}
	w.last[key] = fp
}

// Result counts what a Write did.
type Result struct {
	Updated   int // objects whose status was written
	Unchanged int // objects already up to date
	Gone      int // objects deleted meanwhile
}

// Write brings the cluster in line with the computed status. It goes on
// after a failed object and returns the errors joined.
func (w *Writer) Write(ctx context.Context, routes []status.Route, policies []status.Policy) (Result, error) {
	var res Result
	var errs []error
	count := func(key, fp string, changed bool, err error) {
		if err == nil {
			w.remember(key, fp)
		}
		switch {
		case errors.Is(err, errGone):
			res.Gone++
		case err != nil:
			errs = append(errs, err)
		case changed:
			res.Updated++
		default:
			res.Unchanged++
		}
	}
	for _, r := range routes {
		key, fp := fmt.Sprintf("%s/%s/%s", r.Kind, r.Namespace, r.Name), fmt.Sprintf("%+v", r)
		if w.seen(key, fp) {
			res.Unchanged++
			continue
		}
		changed, err := w.writeRoute(ctx, r)
		count(key, fp, changed, err)
	}
	for _, p := range policies {
		key, fp := fmt.Sprintf("%s/%s/%s", p.Kind, p.Namespace, p.Name), fmt.Sprintf("%+v", p)
		if w.seen(key, fp) {
			res.Unchanged++
			continue
		}
		changed, err := w.writePolicy(ctx, p)
		count(key, fp, changed, err)
	}
	return res, errors.Join(errs...)
}

var errGone = errors.New("object no longer exists")

func (w *Writer) now() metav1.Time {
	if w.Now != nil {
		return metav1.NewTime(w.Now().Truncate(time.Second))
	}
	return metav1.NewTime(time.Now().Truncate(time.Second))
}

// conditions turns computed conditions into API conditions, keeping the
// lastTransitionTime of an existing condition whose status is unchanged.
func (w *Writer) conditions(in []status.Condition, gen int64, old []metav1.Condition) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(in))
	for _, c := range in {
		st := metav1.ConditionFalse
		if c.Status {
			st = metav1.ConditionTrue
		}
		mc := metav1.Condition{Type: c.Type, Status: st, Reason: c.Reason, Message: c.Message,
			ObservedGeneration: gen, LastTransitionTime: w.now()}
		for _, o := range old {
			if o.Type == c.Type && o.Status == st {
				mc.LastTransitionTime = o.LastTransitionTime
			}
		}
		out = append(out, mc)
	}
	return out
}

func (w *Writer) writeRoute(ctx context.Context, r status.Route) (bool, error) {
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		switch r.Kind {
		case model.HTTPRoute:
			changed, err = w.writeHTTPRoute(ctx, r)
		case model.GRPCRoute:
			changed, err = w.writeGRPCRoute(ctx, r)
		default:
			err = fmt.Errorf("unknown route kind %q", r.Kind)
		}
		return err
	})
	if err != nil && !errors.Is(err, errGone) {
		err = fmt.Errorf("status of %s %s/%s: %w", r.Kind, r.Namespace, r.Name, err)
	}
	return changed, err
}

func (w *Writer) writeHTTPRoute(ctx context.Context, r status.Route) (bool, error) {
	c := w.Gateway.GatewayV1().HTTPRoutes(r.Namespace)
	obj, err := c.Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		return false, notFoundIsGone(err)
	}
	parents, ok := w.routeParents(r, obj.Generation, obj.Spec.ParentRefs, obj.Status.Parents)
	if !ok {
		return false, nil
	}
	obj.Status.Parents = parents
	_, err = c.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err == nil, notFoundIsGone(err)
}

func (w *Writer) writeGRPCRoute(ctx context.Context, r status.Route) (bool, error) {
	c := w.Gateway.GatewayV1().GRPCRoutes(r.Namespace)
	obj, err := c.Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		return false, notFoundIsGone(err)
	}
	parents, ok := w.routeParents(r, obj.Generation, obj.Spec.ParentRefs, obj.Status.Parents)
	if !ok {
		return false, nil
	}
	obj.Status.Parents = parents
	_, err = c.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	return err == nil, notFoundIsGone(err)
}

// routeParents returns the new status.parents and whether it differs from
// old. Status is computed against the object's generation as read now.
func (w *Writer) routeParents(r status.Route, gen int64, refs []gwapiv1.ParentReference, old []gwapiv1.RouteParentStatus) ([]gwapiv1.RouteParentStatus, bool) {
	var out []gwapiv1.RouteParentStatus
	ours := map[int]gwapiv1.RouteParentStatus{}
	for _, o := range old {
		if string(o.ControllerName) != status.ControllerName {
			out = append(out, o)
			continue
		}
		for i, ref := range refs {
			if reflect.DeepEqual(ref, o.ParentRef) {
				ours[i] = o
			}
		}
	}
	for _, p := range r.Parents {
		if p.Index >= len(refs) {
			continue // spec changed under us; the next snapshot fixes it
		}
		out = append(out, gwapiv1.RouteParentStatus{
			ParentRef:      *refs[p.Index].DeepCopy(),
			ControllerName: gwapiv1.GatewayController(status.ControllerName),
			Conditions:     w.conditions(p.Conditions, gen, ours[p.Index].Conditions),
		})
	}
	return out, !reflect.DeepEqual(normalize(out), normalize(old))
}

// normalize makes nil and empty slices compare equal.
func normalize[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

var policyGVR = map[string]schema.GroupVersionResource{
	"TrafficPolicy":       v1alpha1.GroupVersion.WithResource("trafficpolicies"),
	"AuthorizationPolicy": v1alpha1.GroupVersion.WithResource("authorizationpolicies"),
}

func (w *Writer) writePolicy(ctx context.Context, p status.Policy) (bool, error) {
	gvr, ok := policyGVR[p.Kind]
	if !ok {
		return false, fmt.Errorf("unknown policy kind %q", p.Kind)
	}
	c := w.Dynamic.Resource(gvr).Namespace(p.Namespace)
	changed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := c.Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return notFoundIsGone(err)
		}
		var st v1alpha1.PolicyStatus
		if raw, found, _ := unstructured.NestedMap(u.Object, "status"); found {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
				return fmt.Errorf("read status: %w", err)
			}
		}
		next := w.ancestors(p, u.GetGeneration(), st.Ancestors)
		if reflect.DeepEqual(normalize(next), normalize(st.Ancestors)) {
			changed = false
			return nil
		}
		st.Ancestors = next
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&st)
		if err != nil {
			return err
		}
		if err := unstructured.SetNestedMap(u.Object, raw, "status"); err != nil {
			return err
		}
		_, err = c.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		changed = err == nil
		return notFoundIsGone(err)
	})
	if err != nil && !errors.Is(err, errGone) {
		err = fmt.Errorf("status of %s %s/%s: %w", p.Kind, p.Namespace, p.Name, err)
	}
	return changed, err
}

func (w *Writer) ancestors(p status.Policy, gen int64, old []gwapiv1.PolicyAncestorStatus) []gwapiv1.PolicyAncestorStatus {
	var out []gwapiv1.PolicyAncestorStatus
	ours := map[string]gwapiv1.PolicyAncestorStatus{}
	for _, o := range old {
		if string(o.ControllerName) != status.ControllerName {
			out = append(out, o)
			continue
		}
		ours[string(o.AncestorRef.Name)] = o
	}
	seen := map[string]bool{}
	for _, a := range p.Ancestors {
		if seen[a.Service] {
			continue // two targetRefs to one Service (different ports) share an ancestor
		}
		seen[a.Service] = true
		group, kind, ns := gwapiv1.Group(""), gwapiv1.Kind("Service"), gwapiv1.Namespace(p.Namespace)
		out = append(out, gwapiv1.PolicyAncestorStatus{
			AncestorRef:    gwapiv1.ParentReference{Group: &group, Kind: &kind, Namespace: &ns, Name: gwapiv1.ObjectName(a.Service)},
			ControllerName: gwapiv1.GatewayController(status.ControllerName),
			Conditions:     w.conditions(a.Conditions, gen, ours[a.Service].Conditions),
		})
	}
	return out
}
