package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions/apis/v1"

	"github.com/weftmesh/weft/api/v1alpha1"
	"github.com/weftmesh/weft/control-plane/internal/model"
	"github.com/weftmesh/weft/control-plane/internal/source/convert"
)

// kind is one watched resource: how to watch it and where its model goes.
type kind struct {
	name     string
	gvr      schema.GroupVersionResource
	optional bool // a CRD that may not be installed

	newInformer func() cache.SharedIndexInformer
	key         func(namespace, name string) string
	convert     func(obj any) (any, error)
	get         func(s *model.Snapshot, key string) (any, bool)
	put         func(s *model.Snapshot, key string, v any)
	remove      func(s *model.Snapshot, key string) bool // reports whether key was there

	reportedMissing bool // used by Run only
}

// newKind ties a decoder, a converter and a Snapshot map together.
func newKind[T, M any](name string, gvr schema.GroupVersionResource, optional bool, inf func() cache.SharedIndexInformer,
	key func(namespace, name string) string, decode func(obj any) (*T, error), conv func(*T) (*M, error),
	table func(*model.Snapshot) map[string]*M) *kind {
	return &kind{
		name: name, gvr: gvr, optional: optional, newInformer: inf, key: key,
		convert: func(obj any) (any, error) {
			t, err := decode(obj)
			if err != nil {
				return nil, err
			}
			return conv(t)
		},
		get: func(s *model.Snapshot, k string) (any, bool) {
			v, ok := table(s)[k]
			return v, ok
		},
		put: func(s *model.Snapshot, k string, v any) { table(s)[k] = v.(*M) },
		remove: func(s *model.Snapshot, k string) bool {
			_, ok := table(s)[k]
			delete(table(s), k)
			return ok
		},
	}
}

// typed decodes an object of a typed informer.
func typed[T any](obj any) (*T, error) {
	t, ok := obj.(*T)
	if !ok {
		return nil, fmt.Errorf("informer delivered %T, want %T", obj, t)
	}
	return t, nil
}

// fromUnstructured decodes an object of a dynamic informer.
func fromUnstructured[T any](obj any) (*T, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("informer delivered %T, want *unstructured.Unstructured", obj)
	}
	var t T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &t); err != nil {
		return nil, fmt.Errorf("decode %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	return &t, nil
}

func nsKey(namespace, name string) string { return namespace + "/" + name }

func routeKey(k model.RouteKind) func(namespace, name string) string {
	return func(namespace, name string) string { return model.RouteKey(k, namespace, name) }
}

func noErr[T, M any](f func(*T) *M) func(*T) (*M, error) {
	return func(t *T) (*M, error) { return f(t), nil }
}

// GroupVersionResources of the watched kinds.
var (
	gvrNamespaces            = corev1.SchemeGroupVersion.WithResource("namespaces")
	gvrPods                  = corev1.SchemeGroupVersion.WithResource("pods")
	gvrServices              = corev1.SchemeGroupVersion.WithResource("services")
	gvrEndpointSlices        = discoveryv1.SchemeGroupVersion.WithResource("endpointslices")
	gvrHTTPRoutes            = gwapiv1.SchemeGroupVersion.WithResource("httproutes")
	gvrGRPCRoutes            = gwapiv1.SchemeGroupVersion.WithResource("grpcroutes")
	gvrTrafficPolicies       = v1alpha1.GroupVersion.WithResource("trafficpolicies")
	gvrAuthorizationPolicies = v1alpha1.GroupVersion.WithResource("authorizationpolicies")
)

func allKinds(core kubernetes.Interface, gw gwclient.Interface, dyn dynamic.Interface) []*kind {
	all := metav1.NamespaceAll
	noIndex := cache.Indexers{}
	dynamicInformer := func(gvr schema.GroupVersionResource) func() cache.SharedIndexInformer {
		return func() cache.SharedIndexInformer {
			return dynamicinformer.NewFilteredDynamicInformer(dyn, gvr, all, 0, noIndex, nil).Informer()
		}
	}
	return []*kind{
		newKind("Namespace", gvrNamespaces, false,
			func() cache.SharedIndexInformer { return coreinformers.NewNamespaceInformer(core, 0, noIndex) },
			func(_, name string) string { return name }, typed[corev1.Namespace], noErr(convert.Namespace),
			func(s *model.Snapshot) map[string]*model.Namespace { return s.Namespaces }),
		newKind("Pod", gvrPods, false,
			func() cache.SharedIndexInformer { return coreinformers.NewPodInformer(core, all, 0, noIndex) },
			nsKey, typed[corev1.Pod], noErr(convert.Pod),
			func(s *model.Snapshot) map[string]*model.Pod { return s.Pods }),
		newKind("Service", gvrServices, false,
			func() cache.SharedIndexInformer { return coreinformers.NewServiceInformer(core, all, 0, noIndex) },
			nsKey, typed[corev1.Service], convert.Service,
			func(s *model.Snapshot) map[string]*model.Service { return s.Services }),
		newKind("EndpointSlice", gvrEndpointSlices, false,
			func() cache.SharedIndexInformer {
				return discoveryinformers.NewEndpointSliceInformer(core, all, 0, noIndex)
			},
			nsKey, typed[discoveryv1.EndpointSlice], convert.EndpointSlice,
			func(s *model.Snapshot) map[string]*model.EndpointSlice { return s.EndpointSlices }),
		newKind("HTTPRoute", gvrHTTPRoutes, true,
			func() cache.SharedIndexInformer { return gwinformers.NewHTTPRouteInformer(gw, all, 0, noIndex) },
			routeKey(model.HTTPRoute), typed[gwapiv1.HTTPRoute], convert.HTTPRoute,
			func(s *model.Snapshot) map[string]*model.Route { return s.Routes }),
		newKind("GRPCRoute", gvrGRPCRoutes, true,
			func() cache.SharedIndexInformer { return gwinformers.NewGRPCRouteInformer(gw, all, 0, noIndex) },
			routeKey(model.GRPCRoute), typed[gwapiv1.GRPCRoute], convert.GRPCRoute,
			func(s *model.Snapshot) map[string]*model.Route { return s.Routes }),
		newKind("TrafficPolicy", gvrTrafficPolicies, true, dynamicInformer(gvrTrafficPolicies),
			nsKey, fromUnstructured[v1alpha1.TrafficPolicy], convert.TrafficPolicy,
			func(s *model.Snapshot) map[string]*model.TrafficPolicy { return s.TrafficPolicies }),
		newKind("AuthorizationPolicy", gvrAuthorizationPolicies, true, dynamicInformer(gvrAuthorizationPolicies),
			nsKey, fromUnstructured[v1alpha1.AuthorizationPolicy], convert.AuthorizationPolicy,
			func(s *model.Snapshot) map[string]*model.AuthorizationPolicy { return s.AuthorizationPolicies }),
	}
}
