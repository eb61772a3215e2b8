// Package sandbox builds, on one Linux machine, the network of a simulated
// cluster for end-to-end tests and `weftctl sandbox up|down`: one network
// namespace per node, one per pod, and an underlay joining the nodes. Later
// layers (control plane, node proxies, apps) run processes inside it with
// [Sandbox.Start].
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
// NAME-n<i>-p<j> (and nothing else) and their /etc/netns files.
//
// [Listen] and [Dial] create TCP sockets inside a namespace, for tests.
// They duplicate a little of node-proxy/internal/netns, which Go's internal
// rule keeps this package from importing.
//
// Everything needs root on Linux.
package sandbox
