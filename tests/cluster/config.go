package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Addresses and names of the cluster. There is one cluster per machine at a
// time (Start takes a lock), so they are fixed.
const (
	// NodeName is the name of the only node.
	NodeName = "weft-node"
	// NodeIP is the node's InternalIP: the address of the CNI bridge, which
	// Start creates. The apiserver, the kubelet and CoreDNS listen on it, so
	// pods reach them and nothing listens on the machine's real interfaces.
	NodeIP = "10.244.0.1"
	// PodCIDR is the node's pod range (host-local IPAM on the bridge).
	PodCIDR = "10.244.0.0/24"
	// ServiceCIDR is --service-cluster-ip-range.
	ServiceCIDR = "10.96.0.0/16"
	// APIServiceIP is the ClusterIP of the default/kubernetes Service.
	APIServiceIP = "10.96.0.1"
	// DNSServiceIP is the ClusterIP of kube-system/kube-dns, the pods'
	// nameserver; it leads to CoreDNS on NodeIP:53.
	DNSServiceIP = "10.96.0.10"
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain = "cluster.local"
	// BridgeName is the Linux bridge the pods are attached to.
	BridgeName = "weftbr0"
	// CNINetworkName is the name of the CNI network (the conflist's "name").
	CNINetworkName = "weft-cluster"
	// CNIConfFile is the conflist's file name in CNIConfDir.
	CNIConfFile = "10-weft-cluster.conflist"
	// DefaultStateDir is where Start keeps everything when Options.StateDir
	// is empty. It is fixed (not a temporary name) so that a Start finds and
	// removes what a crashed earlier run left behind.
	DefaultStateDir = "/var/lib/weft-cluster"

	apiserverPort = 6443
	etcdPort      = 12379
	etcdPeerPort  = 12380
	dnsReadyPort  = 18181
)

// layout names the files and directories under the state directory.
type layout struct{ dir string }

func (l layout) path(elem ...string) string {
	return filepath.Join(append([]string{l.dir}, elem...)...)
}
func (l layout) pki(name string) string { return l.path("pki", name) }
func (l layout) kubeconfig(name string) string {
	return l.path("kubeconfig", name+".kubeconfig")
}
func (l layout) logs() string             { return l.path("logs") }
func (l layout) etcdData() string         { return l.path("etcd") }
func (l layout) containerdConfig() string { return l.path("containerd", "config.toml") }
func (l layout) containerdRoot() string   { return l.path("containerd", "root") }
func (l layout) containerdState() string  { return l.path("containerd", "state") }
func (l layout) containerdSocket() string { return l.path("containerd", "containerd.sock") }
func (l layout) runcRoot() string         { return l.path("runc") }
func (l layout) cniBin() string           { return l.path("cni", "bin") }
func (l layout) cniConf() string          { return l.path("cni", "net.d") }
func (l layout) cniIPAM() string          { return l.path("cni", "ipam") }
func (l layout) kubeletRoot() string      { return l.path("kubelet") }
func (l layout) kubeletConfig() string    { return l.path("kubelet-config.yaml") }
func (l layout) podLogs() string          { return l.path("pod-logs") }
func (l layout) staticPods() string       { return l.path("manifests") }
func (l layout) kubeProxyConfig() string  { return l.path("kube-proxy-config.yaml") }
func (l layout) corefile() string         { return l.path("Corefile") }
func (l layout) images() string           { return l.path("images") }
func (l layout) stateFile() string        { return l.path("state.json") }
func (l layout) apiserverURL() string     { return "https://" + NodeIP + ":" + strconv.Itoa(apiserverPort) }
func (l layout) etcdURL() string          { return "http://127.0.0.1:" + strconv.Itoa(etcdPort) }
func (l layout) etcdPeerURL() string      { return "http://127.0.0.1:" + strconv.Itoa(etcdPeerPort) }
func (l layout) netnsDir() string         { return filepath.Join(l.criState(), "netns") }
func (l layout) criState() string {
	return filepath.Join(l.containerdState(), "io.containerd.grpc.v1.cri")
}
func (l layout) sandboxImage(tag string) string { return "docker.io/weft/pause:" + tag }

// kubeconfigYAML is a kubeconfig for the client certificate name.
func (l layout) kubeconfigYAML(name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: weft
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: weft
  context:
    cluster: weft
    user: %s
current-context: weft
`, l.apiserverURL(), l.pki("ca.crt"), name, l.pki(name+".crt"), l.pki(name+".key"), name)
}

// containerdTOML is containerd's configuration (the 1.6 "version = 2"
// schema, which containerd 2.x reads too). Notes on the settings:
//   - restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so runc cannot
//     lower oom_score_adj; without it every pod fails with "can't get final
//     child's PID from pipe".
//   - SystemdCgroup = false: cgroup v1 without systemd (kubelet cgroupfs).
//   - everything (root, state, socket, runc root, netns mounts) under the
//     state directory, so teardown can find it.
func (l layout) containerdTOML(sandboxImage string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  max_container_log_line_size = 16384

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    discard_unpacked_layers = false

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, l.containerdRoot(), l.containerdState(), l.containerdSocket(), l.containerdSocket()+".ttrpc",
		l.path("containerd", "opt"), sandboxImage, l.runcRoot(), l.cniBin(), l.cniConf())
}

// cniConflist is the node's CNI configuration: a bridge with host-local IPAM
// for PodCIDR, and portmap for hostPorts. It is a .conflist with a "plugins"
// list so that a chained plugin (weft-cni) can append itself.
func (l layout) cniConflist() ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       CNINetworkName,
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      BridgeName,
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type": "host-local",
					"ranges": []any{[]any{map[string]any{
						"subnet":     PodCIDR,
						"rangeStart": "10.244.0.10",
						"gateway":    NodeIP,
					}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"dataDir": l.cniIPAM(),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// kubeletYAML is the KubeletConfiguration. failCgroupV1, cgroupfs and
// failSwapOn are what cgroup v1 without systemd needs; image GC never
// removes an image (they were imported and cannot be pulled again);
// eviction thresholds are tiny so a busy machine does not evict test pods.
func (l layout) kubeletYAML() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
tlsCertFile: %s
tlsPrivateKeyFile: %s
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
clusterDNS:
- %s
clusterDomain: %s
resolvConf: ""
staticPodPath: %s
podLogsDir: %s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
imageMinimumGCAge: 87600h
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
serializeImagePulls: false
maxPods: 110
registerNode: true
syncFrequency: 10s
fileCheckFrequency: 5s
nodeStatusReportFrequency: 10s
shutdownGracePeriod: 0s
`, NodeIP, l.pki("ca.crt"), l.pki("kubelet-serving.crt"), l.pki("kubelet-serving.key"),
		l.containerdSocket(), DNSServiceIP, ClusterDomain, l.staticPods(), l.podLogs())
}

// kubeProxyYAML is the KubeProxyConfiguration: iptables mode, and settings
// that keep it from touching the machine beyond the cluster: NodePorts only
// on NodeIP, no conntrack sysctls, no route_localnet.
func (l layout) kubeProxyYAML() string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
mode: iptables
hostnameOverride: %s
bindAddress: %s
clusterCIDR: %s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses:
- %s/32
iptables:
  localhostNodePorts: false
  syncPeriod: 10s
  minSyncPeriod: 0s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, l.kubeconfig("kube-proxy"), NodeName, NodeIP, PodCIDR, NodeIP)
}

// corefileText serves the cluster domain (and reverse zones) from the API
// and nothing else: no forward plugin, so no query leaves the machine.
func (l layout) corefileText() string {
	return fmt.Sprintf(`.:53 {
    bind %s
    errors
    ready 127.0.0.1:%d
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    cache 5
}
`, NodeIP, dnsReadyPort, ClusterDomain, l.kubeconfig("admin"))
}

// writeConfigs writes the kubeconfigs and every component's configuration.
func (l layout) writeConfigs(sandboxImage string) error {
	files := map[string]string{
		l.containerdConfig(): l.containerdTOML(sandboxImage),
		l.kubeletConfig():    l.kubeletYAML(),
		l.kubeProxyConfig():  l.kubeProxyYAML(),
		l.corefile():         l.corefileText(),
	}
	for _, c := range clientCerts {
		files[l.kubeconfig(c.name)] = l.kubeconfigYAML(c.name)
	}
	conflist, err := l.cniConflist()
	if err != nil {
		return err
	}
	files[filepath.Join(l.cniConf(), CNIConfFile)] = string(conflist)
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	for _, d := range []string{l.logs(), l.cniBin(), l.cniIPAM(), l.kubeletRoot(), l.podLogs(), l.staticPods(), l.runcRoot()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}
