// Command weft-cni is Weft's chained CNI plugin (CNI spec 0.4.0 and 1.0.0).
// It runs after the cluster's own CNI plugin and tells the node proxy about
// each pod through the enrollment socket (package enroll), handing over the
// pod's network namespace; it never changes the pod's network itself.
//
// Configuration, an entry of the conflist after the cluster's plugin:
//
//	{
//	  "type": "weft-cni",
//	  "socketPath": "/var/run/weft/node-proxy.sock",  // enrollment socket; default shown
//	  "failOpen": false,                              // see below; default false
//	  "timeoutSeconds": 10                            // per request to the node proxy; 0 = 10
//	}
//
// The pod is named by CNI_ARGS: K8S_POD_NAMESPACE, K8S_POD_NAME and
// K8S_POD_UID. A container without K8S_POD_NAMESPACE and K8S_POD_NAME is not
// a Kubernetes pod and is passed through without contacting the node proxy;
// a pod without K8S_POD_UID is an error.
//
// # Commands
//
//   - ADD opens CNI_NETNS, sends it to the node proxy and waits for the
//     acknowledgement, which comes only once the pod's capture rules and
//     listeners are in place. It prints prevResult (converted to the
//     config's cniVersion, otherwise unchanged), or an empty result if there
//     is none.
//   - DEL tells the node proxy the pod is gone. It is best effort and always
//     succeeds, as the CNI spec requires; failures go to stderr.
//   - CHECK asks the node proxy whether the pod is enrolled.
//   - VERSION reports 0.4.0 and 1.0.0.
//
// # Fail closed
//
// Whether a pod belongs to the mesh depends on namespace labels and pod
// annotations in the API server, which the plugin cannot read. The node
// proxy decides, and the plugin acts on its reply:
//
//	node proxy reply                        ADD                    CHECK
//	ok, enrolled                            succeeds               succeeds
//	ok, not enrolled (not in the mesh)      succeeds               succeeds
//	refused (ok=false, with an error)       FAILS, even failOpen   FAILS, even failOpen
//	unreachable (no socket, no listener,    FAILS unless failOpen  FAILS unless failOpen
//	  connection lost, or timeout)
//
// An ADD that fails makes the runtime tear the sandbox down and kubelet
// retry, so no pod of the mesh ever runs without its capture rules. The
// trade-off, as with Istio CNI's fail-closed default: while the node proxy
// on a node is down, no pod at all (meshed or not) can start there, since
// the plugin cannot tell which pods could safely go without it. failOpen:
// true lets pods start unmeshed while the node proxy is unreachable (they
// then run without mTLS or policy until re-created; a warning goes to
// stderr); it never overrides an explicit refusal.
package main
