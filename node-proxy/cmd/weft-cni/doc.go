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
//
// # Installing
//
// Run without CNI_COMMAND (never the case when the runtime runs it), the
// binary installs itself; the Helm chart runs this as the install-cni
// container of the node proxy DaemonSet:
//
//	weft-cni install [--cni-bin-dir=/host/opt/cni/bin] [--cni-conf-dir=/host/etc/cni/net.d]
//	                 [--plugin-config='{"socketPath":"/var/run/weft/node-proxy.sock"}']
//	                 [--watch [--watch-interval=5s] [--uninstall-on-exit]]
//	weft-cni uninstall [--cni-bin-dir=...] [--cni-conf-dir=...]
//
// install copies its own executable to <cni-bin-dir>/weft-cni (a temporary
// file renamed into place, mode 0755) and adds the entry {"type":
// "weft-cni", ...plugin-config} at the end of the "plugins" list of the
// primary network configuration: the lexically first *.conf, *.conflist or
// *.json file of the conf dir, the one the runtime (libcni) uses. An entry
// already there is left alone when equal and updated in place otherwise
// (duplicates are dropped); the other members are kept in their order,
// re-indented. The file is replaced atomically with its mode and owner
// kept. A primary file that is not a conflist (a single-plugin .conf, or
// anything without a "plugins" list) is refused with an error rather than
// converted: the cluster's CNI would write its .conf again, and the
// runtime would pick that up again, silently without weft-cni. Invalid JSON
// is refused too, and the file left as it is. plugin-config is validated
// as the plugin would parse it.
//
// With --watch it keeps running: it waits for a conflist when there is
// none yet, and every --watch-interval re-adds the entry (and the binary)
// if the cluster's CNI or anyone else removed it; failures are logged and
// retried. It exits 0 on SIGTERM or SIGINT, after uninstalling when
// --uninstall-on-exit is set. Without --watch a failure exits 1.
//
// uninstall removes every weft-cni entry from every conflist of the conf
// dir (files it cannot parse are left alone), then <cni-bin-dir>/weft-cni.
//
// Writing root-owned files in the host's CNI directories needs root but no
// capability: the files and directories are owned by uid 0, so owner
// permissions apply (CAP_DAC_OVERRIDE is not needed). A file owned by
// another user would need CAP_CHOWN to keep its owner, and fails instead.
package main
