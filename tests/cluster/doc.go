// Package cluster runs a real single-node Kubernetes cluster on this machine
// for end-to-end tests: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd with runc, the kubelet, kube-proxy (iptables
// mode), the CNI reference plugins (bridge + host-local + portmap) and
// CoreDNS, with the images of Weft built locally and imported (no registry is
// needed or reachable).
//
// Start builds it under one state directory (DefaultStateDir) and returns
// when the node is Ready; Stop tears everything down and puts the machine
// back: pods are stopped through the CRI first (so CNI DEL runs), then the
// components are stopped by PID, then the KUBE-*/CNI-* iptables chains, the
// bridge, the mounts, the kubelet's cgroups and the host paths the
// components created are removed, and the sysctls they changed are
// restored. A run that crashed without Stop is cleaned up by the next Start.
// There is one cluster per machine at a time: Start waits for a lock.
//
// Only Linux, as root. The binaries come from build-binaries.sh next to this
// file (built once, 15-20 minutes, cached under $WEFT_CACHE or
// ~/.cache/weft); see README.md.
//
// Everything listens on NodeIP, the address of the pods' bridge, or on
// loopback: nothing is reachable from, or sent to, the machine's real
// network. CoreDNS runs on the node (not as a pod) and answers only for the
// cluster domain; kube-system/kube-dns (DNSServiceIP) leads to it.
//
// Hosts paths a test may need to hand to the Weft chart, because the
// cluster's CNI configuration and network namespaces are under the state
// directory rather than at the usual places: Cluster.CNIBinDir
// (cni.binDir), Cluster.CNIConfDir (cni.confDir) and Cluster.NetnsDir
// (nodeProxy.netnsDir).
package cluster
