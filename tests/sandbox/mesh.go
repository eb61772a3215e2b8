package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
)

// Defaults of the mesh layer; see [MeshConfig].
const (
	// DefaultNamespace is the Kubernetes namespace of the default pods and
	// Services; it is enrolled.
	DefaultNamespace = "demo"

	// Ports weft-echo serves in every pod (its defaults).
	EchoHTTPPort = 8080
	EchoGRPCPort = 9090
	EchoTCPPort  = 7070

	// ControlPlanePort is the control plane's identity and xDS port, on
	// node 0's underlay address.
	ControlPlanePort = 15012
	// ControlPlaneAdmin is the control plane's admin address inside node
	// 0's namespace.
	ControlPlaneAdmin = "127.0.0.1:15014"
	// NodeProxyReadinessPort serves /healthz/ready on each node's address.
	NodeProxyReadinessPort = 15021

	// meshKey and meshEnabled enroll a namespace, as the control plane's
	// model defines them (weftmesh.io/mesh: enabled on the namespace;
	// disabled on a pod opts it out). tests/ cannot import the control
	// plane's internal packages, hence the copy.
	meshKey      = "weftmesh.io/mesh"
	meshEnabled  = "enabled"
	meshDisabled = "disabled"
)

// DefaultServiceCIDR is where Service VIPs are allocated from, starting at
// its 10th address (10.96.0.10). VIPs are not routed: enrolled pods' traffic
// to them is captured by the node proxies.
var DefaultServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")

// MeshConfig describes a sandbox mesh: a [Topology], the Kubernetes objects
// that describe its pods to the control plane, and the processes to run.
type MeshConfig struct {
	// Topology is the network to build.
	Topology Topology

	// BinDir holds weft-control-plane, weft-node-proxy (unless
	// NoNodeProxies), weft-cni and weft-echo; `make build` puts them in
	// bin/. Required.
	BinDir string

	// Namespaces are the Kubernetes namespaces pods and Services may use.
	// Nil means one: DefaultNamespace, enrolled.
	Namespaces []NamespaceSpec

	// Pods describes pod j of node i. Nil means [DefaultPod]. Zero fields
	// of what it returns are defaulted as DefaultPod would.
	Pods func(node, j int) PodSpec

	// Services are the Services to declare. Nil means [DefaultServices];
	// an empty non-nil slice means none.
	Services []ServiceSpec

	// NodeProxyArgs, if set, returns more flags for node i's proxy
	// (tracing, say).
	NodeProxyArgs func(node int) []string
	// BeforeNodeProxies, if set, runs once the namespaces exist and the
	// control plane runs, before the node proxies start: to open a
	// listener they will use (an OTLP receiver in a node's namespace).
	BeforeNodeProxies func(ctx context.Context, m *Mesh) error
	// Extra are more YAML documents for the config dir (HTTPRoute,
	// TrafficPolicy, AuthorizationPolicy, ...), written to ExtraFile.
	Extra []string

	// NoNodeProxies builds the mesh without node proxies: no
	// weft-node-proxy runs and the CNI plugin is not called. The control
	// plane and the apps run; pods talk in plaintext by pod IP, and Service
	// VIPs do not answer.
	NoNodeProxies bool

	// LogDir receives one log file per process (control-plane.log,
	// node-proxy-<node>.log, echo-<pod>.log, cni.log). Empty means a new
	// temporary directory, which Down deletes unless [Mesh.KeepLogs] was
	// called or Up failed. A given LogDir is never deleted.
	LogDir string

	// Log reports progress. Nil means no reports.
	Log *slog.Logger
}

// NamespaceSpec is a Kubernetes namespace of the mesh.
type NamespaceSpec struct {
	Name string
	// Enrolled annotates the namespace weftmesh.io/mesh: enabled.
	Enrolled    bool
	Labels      map[string]string
	Annotations map[string]string
}

// PodSpec is the Kubernetes side of a pod: what the config dir says about
// it. Zero fields are defaulted as noted.
type PodSpec struct {
	Namespace string // default DefaultNamespace
	Name      string // default echo-n<i>-p<j>
	// ServiceAccount defaults to "echo".
	ServiceAccount string
	// Labels default to app: echo; pod: <name> is always added unless set.
	Labels map[string]string
	// Annotations: weftmesh.io/mesh: disabled opts the pod out of the mesh.
	Annotations map[string]string
	// NoEcho leaves the pod without weft-echo (for a test's own server).
	NoEcho bool
	// ServerFirst makes weft-echo greet first on its TCP port.
	ServerFirst bool
}

// DefaultPod is the default PodSpec of pod j of node i: echo-n<i>-p<j> in
// DefaultNamespace, service account echo, labels app: echo and pod: <name>.
func DefaultPod(node, j int) PodSpec {
	name := fmt.Sprintf("echo-n%d-p%d", node, j)
	return PodSpec{Namespace: DefaultNamespace, Name: name, ServiceAccount: "echo",
		Labels: map[string]string{"app": "echo", "pod": name}}
}

// ServiceSpec is a Kubernetes Service of type ClusterIP.
type ServiceSpec struct {
	Name      string
	Namespace string // default DefaultNamespace
	// ClusterIP is the VIP. Zero means the next free address of
	// DefaultServiceCIDR from 10.96.0.10 on.
	ClusterIP netip.Addr
	// Selector picks the pods; the control plane derives the
	// EndpointSlices. Nil means none (write EndpointSlices in Extra).
	Selector map[string]string
	Ports    []ServicePort
}

// ServicePort is a port of a Service (TCP).
type ServicePort struct {
	Name        string
	Port        int
	TargetPort  int    // 0 means Port
	AppProtocol string // http, http2, grpc, kubernetes.io/h2c, or empty
}

// DefaultServices returns the default Service: echo in DefaultNamespace,
// selecting app: echo, with ports http 8080 (appProtocol http), grpc 9090
// (appProtocol grpc) and tcp-echo 7070.
func DefaultServices() []ServiceSpec {
	return []ServiceSpec{{
		Name: "echo", Namespace: DefaultNamespace, Selector: map[string]string{"app": "echo"},
		Ports: []ServicePort{
			{Name: "http", Port: EchoHTTPPort, AppProtocol: "http"},
			{Name: "grpc", Port: EchoGRPCPort, AppProtocol: "grpc"},
			{Name: "tcp-echo", Port: EchoTCPPort},
		},
	}}
}

// MeshPod is a pod of a running mesh.
type MeshPod struct {
	Name           string // Kubernetes name, unique in the mesh
	Namespace      string
	UID            string // random per run
	ServiceAccount string
	Labels         map[string]string
	Annotations    map[string]string
	Node           string // the node's name, as in spec.nodeName and the sandbox
	NodeIndex      int
	IP             netip.Addr
	NetNSPath      string
	// Enrolled: its namespace is enrolled and it does not opt out. The
	// node proxy applies the same rule.
	Enrolled    bool
	NoEcho      bool
	ServerFirst bool
}

// MeshService is a Service of a running mesh.
type MeshService struct {
	Name, Namespace string
	IP              netip.Addr
	Selector        map[string]string
	Ports           []ServicePort
}

// Files Up writes in the config dir; [Mesh.Apply] may replace them.
const (
	MeshFile  = "00-sandbox.yaml" // namespaces, service accounts, pods, services
	ExtraFile = "50-extra.yaml"   // MeshConfig.Extra
)

// Mesh is a running sandbox mesh. Its methods are safe for concurrent use.
type Mesh struct {
	cfg        MeshConfig
	plan       plan
	binDir     string // absolute
	log        *slog.Logger
	namespaces []NamespaceSpec
	pods       []MeshPod // node by node
	podIndex   map[string]int
	services   []MeshService
	hosts      map[string]string // host name -> VIP, for every pod's /etc/hosts

	logDir  string
	ownLogs bool // logDir was created by Up

	mu       sync.Mutex // guards keepLogs and run's process fields
	keepLogs bool
	run      meshRun
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// newMesh decides every name, address and UID: the pure part of Up.
func (c MeshConfig) newMesh(uid func() string) (*Mesh, error) {
	p, err := c.Topology.plan()
	if err != nil {
		return nil, err
	}
	if c.BinDir == "" {
		return nil, fmt.Errorf("mesh %s: no BinDir", p.name)
	}
	binDir, err := filepath.Abs(c.BinDir)
	if err != nil {
		return nil, fmt.Errorf("mesh %s: BinDir: %w", p.name, err)
	}
	m := &Mesh{cfg: c, plan: p, binDir: binDir, log: c.Log, podIndex: map[string]int{}, hosts: map[string]string{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}

	m.namespaces = c.Namespaces
	if m.namespaces == nil {
		m.namespaces = []NamespaceSpec{{Name: DefaultNamespace, Enrolled: true}}
	}
	nss := map[string]NamespaceSpec{}
	for _, ns := range m.namespaces {
		if !validName(ns.Name) {
			return nil, fmt.Errorf("mesh %s: namespace %q: not a DNS label", p.name, ns.Name)
		}
		if _, dup := nss[ns.Name]; dup {
			return nil, fmt.Errorf("mesh %s: namespace %s declared twice", p.name, ns.Name)
		}
		nss[ns.Name] = ns
	}

	podsOf := c.Pods
	if podsOf == nil {
		podsOf = DefaultPod
	}
	for i, n := range p.nodes {
		for j, sp := range p.pods[i] {
			spec := podsOf(i, j)
			def := DefaultPod(i, j)
			if spec.Namespace == "" {
				spec.Namespace = def.Namespace
			}
			if spec.Name == "" {
				spec.Name = def.Name
			}
			if spec.ServiceAccount == "" {
				spec.ServiceAccount = def.ServiceAccount
			}
			labels := map[string]string{"app": "echo"}
			if spec.Labels != nil {
				labels = maps.Clone(spec.Labels)
			}
			if _, ok := labels["pod"]; !ok {
				labels["pod"] = spec.Name
			}
			ns, ok := nss[spec.Namespace]
			switch {
			case !validName(spec.Name):
				return nil, fmt.Errorf("mesh %s: pod %q (node %d, pod %d): not a DNS label", p.name, spec.Name, i, j)
			case !ok:
				return nil, fmt.Errorf("mesh %s: pod %s: namespace %s is not in Namespaces", p.name, spec.Name, spec.Namespace)
			}
			if _, dup := m.podIndex[spec.Name]; dup {
				return nil, fmt.Errorf("mesh %s: two pods named %s", p.name, spec.Name)
			}
			m.podIndex[spec.Name] = len(m.pods)
			m.pods = append(m.pods, MeshPod{
				Name: spec.Name, Namespace: spec.Namespace, UID: uid(), ServiceAccount: spec.ServiceAccount,
				Labels: labels, Annotations: spec.Annotations, Node: n.Name, NodeIndex: i, IP: sp.IP,
				NetNSPath: sp.NetNSPath, Enrolled: ns.Enrolled && spec.Annotations[meshKey] != meshDisabled,
				NoEcho: spec.NoEcho, ServerFirst: spec.ServerFirst,
			})
		}
	}

	svcs := c.Services
	if svcs == nil {
		svcs = DefaultServices()
	}
	used := map[netip.Addr]string{}
	for _, s := range svcs {
		if s.ClusterIP.IsValid() {
			if other := used[s.ClusterIP]; other != "" {
				return nil, fmt.Errorf("mesh %s: services %s and %s have the same cluster IP %s", p.name, other, s.Name, s.ClusterIP)
			}
			used[s.ClusterIP] = s.Name
		}
	}
	next := nth(DefaultServiceCIDR.Addr(), 10)
	byName := map[string]int{}
	for _, s := range svcs {
		if s.Namespace == "" {
			s.Namespace = DefaultNamespace
		}
		if !validName(s.Name) {
			return nil, fmt.Errorf("mesh %s: service %q: not a DNS label", p.name, s.Name)
		}
		if _, ok := nss[s.Namespace]; !ok {
			return nil, fmt.Errorf("mesh %s: service %s: namespace %s is not in Namespaces", p.name, s.Name, s.Namespace)
		}
		ip := s.ClusterIP
		if !ip.IsValid() {
			for used[next] != "" {
				next = next.Next()
			}
			if !DefaultServiceCIDR.Contains(next) {
				return nil, fmt.Errorf("mesh %s: service CIDR %s is full", p.name, DefaultServiceCIDR)
			}
			ip = next
			used[ip] = s.Name
		} else if !ip.Is4() {
			return nil, fmt.Errorf("mesh %s: service %s: cluster IP %s is not IPv4", p.name, s.Name, ip)
		}
		for _, n := range p.nodes {
			for _, prefix := range []netip.Prefix{n.PodCIDR, netip.PrefixFrom(n.IP, p.nodeBits).Masked()} {
				if prefix.Contains(ip) {
					return nil, fmt.Errorf("mesh %s: service %s: cluster IP %s is in %s", p.name, s.Name, ip, prefix)
				}
			}
		}
		for _, port := range s.Ports {
			if port.Port < 1 || port.Port > 65535 || port.TargetPort < 0 || port.TargetPort > 65535 {
				return nil, fmt.Errorf("mesh %s: service %s: port %d -> %d out of range", p.name, s.Name, port.Port, port.TargetPort)
			}
		}
		key := s.Namespace + "/" + s.Name
		if _, dup := byName[key]; dup {
			return nil, fmt.Errorf("mesh %s: service %s declared twice", p.name, key)
		}
		byName[key] = len(m.services)
		m.services = append(m.services, MeshService{Name: s.Name, Namespace: s.Namespace, IP: ip, Selector: s.Selector, Ports: s.Ports})
	}

	// Host names: NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local, and
	// NAME alone when no other namespace has a Service of that name (every
	// pod gets the same hosts file, so there are no search domains).
	count := map[string]int{}
	for _, s := range m.services {
		count[s.Name]++
	}
	for _, s := range m.services {
		for _, h := range []string{s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc", s.Name + "." + s.Namespace + ".svc.cluster.local"} {
			m.hosts[h] = s.IP.String()
		}
		if count[s.Name] == 1 {
			m.hosts[s.Name] = s.IP.String()
		}
	}
	return m, nil
}

func validName(s string) bool { return len(s) <= 63 && dnsLabelRE.MatchString(s) }

// newUID returns a random UUID (version 4), as a pod's metadata.uid.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Name returns the sandbox's name.
func (m *Mesh) Name() string { return m.plan.name }

// Nodes returns the simulated nodes, in order.
func (m *Mesh) Nodes() []Node { return append([]Node(nil), m.plan.nodes...) }

// Pods returns every pod, node by node.
func (m *Mesh) Pods() []MeshPod { return append([]MeshPod(nil), m.pods...) }

// Pod returns the pod of that Kubernetes name.
func (m *Mesh) Pod(name string) (MeshPod, bool) {
	i, ok := m.podIndex[name]
	if !ok {
		return MeshPod{}, false
	}
	return m.pods[i], true
}

// Services returns the Services, in the order declared.
func (m *Mesh) Services() []MeshService { return append([]MeshService(nil), m.services...) }

// ServiceIP returns the VIP of the Service called name: NAME.NAMESPACE, or
// NAME alone when only one namespace has a Service of that name. The zero
// Addr means there is none.
func (m *Mesh) ServiceIP(name string) netip.Addr {
	a, _ := netip.ParseAddr(m.hosts[name])
	return a
}

// Hosts returns the /etc/hosts entries every pod gets: Service names to
// VIPs.
func (m *Mesh) Hosts() map[string]string {
	return maps.Clone(m.hosts)
}

// ControlPlane returns the control plane's identity and xDS address.
func (m *Mesh) ControlPlane() netip.AddrPort {
	return netip.AddrPortFrom(m.plan.nodes[0].IP, ControlPlanePort)
}

// ConfigDir is the directory of Kubernetes objects the control plane reads
// (--config-dir); see [Mesh.Apply].
func (m *Mesh) ConfigDir() string { return dirPath(m.plan.name) + "/config" }

// ControlPlaneStateDir is the control plane's --state-dir: its CA, and
// trust-bundle.pem.
func (m *Mesh) ControlPlaneStateDir() string { return dirPath(m.plan.name) + "/control-plane" }

// TrustBundle is the path of the mesh's trust bundle (PEM).
func (m *Mesh) TrustBundle() string { return m.ControlPlaneStateDir() + "/trust-bundle.pem" }

// JoinTokenFile is the file holding node i's join token.
func (m *Mesh) JoinTokenFile(node int) string { return m.nodeDir(node) + "/join-token" }

// NodeProxySocket is node i's enrollment socket (--enroll-socket).
func (m *Mesh) NodeProxySocket(node int) string { return m.nodeDir(node) + "/node-proxy.sock" }

// NodeProxyStateDir is node i's node proxy --state-dir.
func (m *Mesh) NodeProxyStateDir(node int) string { return m.nodeDir(node) + "/state" }

func (m *Mesh) nodeDir(node int) string { return dirPath(m.plan.name) + "/" + m.plan.nodes[node].Name }

// LogDir is where the processes' logs are.
func (m *Mesh) LogDir() string { return m.logDir }

// KeepLogs makes Down keep a temporary LogDir (a test calls it when it
// failed).
func (m *Mesh) KeepLogs() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keepLogs = true
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[V any](mp map[string]V) []string {
	keys := make([]string, 0, len(mp))
	for k := range mp {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
