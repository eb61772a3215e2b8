// Package enroll is the enrollment API between the CNI plugin (weft-cni, or
// the sandbox harness) and the node proxy: the plugin announces each new pod
// and hands over its network namespace; the node proxy installs the pod's
// capture rules and listeners and only then acknowledges, so that no pod in
// the mesh starts unmeshed (fail closed, see cmd/weft-cni).
//
// # Transport
//
// A unix socket of type SOCK_SEQPACKET (Go network "unixpacket") at
// [DefaultSocketPath], /var/run/weft/node-proxy.sock, mode 0600: only root
// (the container runtime running the plugin) may enroll pods. SEQPACKET keeps
// message boundaries, so each message is exactly one packet and needs no
// further framing.
//
// One exchange per connection: the client connects, sends one request
// packet, reads one reply packet, and the server closes the connection.
//
// # Messages
//
// Every packet is one JSON object, UTF-8, at most [MaxMessageSize] (16384)
// bytes. Request:
//
//	{"version":1,"op":"add","pod":{"uid":"6f1c...","namespace":"shop","name":"cart-7d9f","netnsPath":"/var/run/netns/cni-1234"}}
//
//	field            meaning
//	version          protocol version; must be 1
//	op               "add", "del" or "check"
//	pod.uid          Kubernetes pod UID; required; 1-128 bytes of [A-Za-z0-9._-], not starting with '.'
//	pod.namespace    pod namespace; required, at most 253 bytes
//	pod.name         pod name; required, at most 253 bytes
//	pod.netnsPath    add only, optional: where the netns is bind-mounted, kept so a
//	                 restarted node proxy can re-open it; absolute, at most 4096 bytes
//
// An "add" packet carries exactly one file descriptor in an SCM_RIGHTS
// control message: the pod's network namespace (an open /proc/PID/ns/net or
// bind mount). The server checks that it is a network namespace
// (ioctl NS_GET_NSTYPE). "del" and "check" carry no descriptor.
//
// Reply, always exactly one packet:
//
//	{"ok":true,"enrolled":true}          add: enrolled, rules and listeners are in place
//	                                     check: the pod is enrolled
//	{"ok":true,"enrolled":false}         add/check: the pod is not part of the mesh
//	                                     ([ErrNotMeshed]); the node proxy will not capture it
//	{"ok":true}                          del: done (also when the pod was unknown)
//	{"ok":false,"error":"..."}           refused: a malformed request, a bad descriptor,
//	                                     or the node proxy's own error, e.g. rules
//	                                     could not be installed, or check found a pod
//	                                     of the mesh that is not enrolled
//
// A request that cannot be read (too large, too many descriptors, not JSON,
// unknown op or version, missing fields, missing or extra descriptor) gets an
// ok=false reply; received descriptors are always closed unless handed to
// the [Handler]; the server keeps serving.
//
// # Flow
//
// [Serve] calls the [Handler] once per request and sends the reply only
// after the Handler returns: for add, only once the pod's redirect rules and
// listeners exist. The client waits for that reply ([Client.Timeout] bounds
// the whole exchange).
//
// # Re-adoption
//
// The node proxy records every enrolled pod in a [Store] (one JSON file per
// pod UID). At start it calls [Store.List], re-opens each pod's NetNSPath
// with netns.Open and enrolls it again (installing rules is idempotent); a
// path that no longer opens means the pod is gone, and its record is
// deleted. Pods added without a NetNSPath cannot be re-adopted after a
// restart: the runtime must run the plugin again.
package enroll
