// Package convert turns Kubernetes, Gateway API and weftmesh.io objects into
// model types. Both sources use it: source/kube on informer objects and
// source/dir on objects decoded from YAML files, so a cluster and a
// --config-dir with the same objects produce the same model.
//
// The functions are pure. Besides copying fields they do two jobs an
// apiserver would otherwise do, because local mode has none:
//
//   - Defaulting. Every default the CRD schemas (Gateway API, weftmesh.io)
//     or the core API apply is applied here too, for example an HTTPRoute
//     rule without matches gets the path prefix "/" match and a Service port
//     without targetPort targets its own port. On objects that came through
//     an apiserver this is a no-op.
//   - Validation. Content the schema (OpenAPI or CEL) would reject returns
//     an *InvalidError naming the object and every field at fault, e.g.
//     `TrafficPolicy shop/cart: spec.retry.perTryTimeout: invalid duration "2x" ...`.
//     Content the schema accepts but the mesh cannot serve (an unsupported
//     filter, a regular expression that does not compile) is not an error
//     here: it is carried into the model so status can say why.
//
// Kubernetes types stop at source/**: nothing here returns one.
package convert
