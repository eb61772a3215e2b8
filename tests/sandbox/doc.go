// Package sandbox builds, on one Linux machine, a simulated cluster for
// end-to-end tests and `weftctl sandbox up|down`: the network (one network
// namespace per node, one per pod, and an underlay joining the nodes) and,
// on it, the mesh ([Mesh]: control plane, node proxies, CNI enrollment and
// the echo app), whose processes run inside it with [Sandbox.Start].
//
// # Topology
//
// For a [Topology] named NAME with N nodes and P pods per node, [Topology.Up]
// creates these named namespaces, bind-mounted under /run/netns as iproute2
// does (so `ip netns exec NAME-n0 tcpdump -i eth0` works):
//
//	NAME-u          the underlay: bridge br0, one port n<i> per node
//	NAME-n<i>       node i: eth0 (to br0 in NAME-u), p<j> (to pod j's eth0)
//	NAME-n<i>-p<j>  pod j of node i: eth0 (to p<j> in NAME-n<i>)
//
// Every link lives inside one of these namespaces; nothing is created in the
// caller's namespace. Deleting the namespaces therefore deletes every link,
// which is what [Sandbox.Down] and [Cleanup] rely on.
//
// # Address plan
//
// The namespaces are not connected to the host's network at all, so the
// ranges cannot clash with it; they were still chosen to be rare in real
// networks, to keep captures and logs unambiguous. Both can be changed in
// [Topology].
//
//	underlay   NodeCIDR, default 10.199.0.0/24: node i is the (i+1)-th
//	           address, 10.199.0.(i+1), on its eth0.
//	pods       PodCIDR, default 10.200.0.0/16, is split into /24s: node i owns
//	           10.200.i.0/24. Pod j of node i is 10.200.i.(j+2)/32; the node
//	           holds 10.200.i.1/32 on each of its p<j> links, the gateway.
//
// Pods are routed, not bridged (as Calico and Cilium do): a pod has a /32,
// an on-link route to its gateway 10.200.i.1 and a default route through it,
// so every packet a pod sends, even to a pod on the same node, crosses its
// node's IP stack, where a node proxy can see it. A node forwards (IPv4
// forwarding is on), reaches its own pods through a /32 route per p<j>, and
// the other nodes' pod /24s through their underlay addresses. Service VIPs
// are not routed anywhere: the node proxies capture them.
//
// # Processes, names and crash recovery
//
// [Sandbox.Start] and [Sandbox.Exec] run a program inside a namespace: a
// goroutine locks its OS thread, moves the thread into the namespace with
// setns(2), and forks the program from that thread, which the child
// inherits. The thread is never returned to the runtime (the goroutine ends
// locked, so the runtime destroys it).
//
// Name resolution follows the iproute2 convention: [Sandbox.WriteHosts]
// writes /etc/netns/<netns>/hosts for every pod, and a process started in a
// namespace that has an /etc/netns/<netns>/ directory gets, like with
// `ip netns exec`, a private mount namespace in which every file of that
// directory is bind-mounted over the file of the same name in /etc (the
// same locked thread unshares its mount namespace before forking). Unlike
// `ip netns exec`, /sys is not remounted.
//
// Up records what it creates and every process started in a state file,
// /run/weft-sandbox/NAME.json. [Cleanup] (which Up calls first) reads it and
// kills the recorded processes that are still alive and still run the
// recorded command line, kills any other process left inside the sandbox's
// namespaces, and deletes the namespaces named NAME-u, NAME-n<i> and
// NAME-n<i>-p<j> (and nothing else), their /etc/netns files and the
// sandbox's scratch directory /run/weft-sandbox/NAME/ ([Sandbox.Dir]).
//
// # The mesh layer
//
// [MeshConfig.Up] runs Weft on the network: it builds the Topology, writes
// a directory of Kubernetes YAML describing the pods as a cluster would
// (namespaces, service accounts, pods with spec.nodeName, status.podIP and
// a random uid, Services with a cluster IP; see [Mesh.ConfigDir]) and the
// join tokens, starts weft-control-plane --config-dir on node 0, one
// weft-node-proxy per node, runs the real weft-cni plugin's ADD for every
// pod as a container runtime would (before the app starts: fail closed),
// and starts weft-echo in every pod. Every pod's /etc/hosts maps the
// Service names (echo, echo.demo, echo.demo.svc,
// echo.demo.svc.cluster.local) to their VIPs, which are routed nowhere:
// only the node proxies' capture rules make them answer.
//
// The defaults: namespace demo, enrolled; pod j of node i is echo-n<i>-p<j>
// (service account echo, labels app=echo and pod=<name>); Service echo,
// 10.96.0.10, ports http 8080, grpc 9090, tcp-echo 7070. Everything the
// mesh writes lives in the sandbox's [Sandbox.Dir], /run/weft-sandbox/NAME/:
//
//	config/                 the control plane's --config-dir (00-sandbox.yaml, 50-extra.yaml, [Mesh.Apply])
//	control-plane/          its --state-dir: CA and trust-bundle.pem
//	join-tokens             "NODE TOKEN" lines, for the control plane
//	NAME-n<i>/join-token    node i's token
//	NAME-n<i>/state/        node i's node proxy --state-dir
//	NAME-n<i>/node-proxy.sock  its enrollment socket
//
// so Down and [Cleanup] remove it with the rest. Process logs go to
// MeshConfig.LogDir (by default a temporary directory that Down deletes
// unless [Mesh.KeepLogs]; Up keeps it when it fails, and a crash leaves it).
//
// [Mesh.Get] and [Mesh.Do] run `weft-echo get` inside a pod, so requests
// resolve names through the pod's hosts file and are captured like any
// app's; [Mesh.Exec] runs any program there, [Mesh.Dial] opens a TCP
// connection from Go.
//
// [Listen] and [Dial] create TCP sockets inside a namespace, for tests.
// They duplicate a little of node-proxy/netns, which Go's internal
// rule keeps this package from importing.
//
// Everything needs root on Linux.
package sandbox
