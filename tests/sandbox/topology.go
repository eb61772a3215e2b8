package sandbox

import (
	"fmt"
	"net/netip"
	"regexp"
)

// Default address ranges; see the package documentation for the plan.
var (
	DefaultNodeCIDR = netip.MustParsePrefix("10.199.0.0/24")
	DefaultPodCIDR  = netip.MustParsePrefix("10.200.0.0/16")
)

// Topology describes the simulated cluster network to build.
type Topology struct {
	// Name prefixes every namespace and names the state file. It must be 1
	// to 12 lowercase letters and digits, starting with a letter, and be
	// unique among sandboxes running at once: Up first deletes whatever a
	// sandbox of the same name left.
	Name string

	// Nodes is the number of simulated nodes, at least 1.
	Nodes int

	// PodsPerNode is the number of pods on each node, from 0 to 253.
	PodsPerNode int

	// NodeCIDR is the underlay subnet: node i gets its (i+1)-th address.
	// IPv4 only. The zero value means DefaultNodeCIDR.
	NodeCIDR netip.Prefix

	// PodCIDR is the cluster's pod range, split into one /24 per node. IPv4
	// only, /24 or shorter. The zero value means DefaultPodCIDR.
	PodCIDR netip.Prefix
}

// Node is a simulated node.
type Node struct {
	Name      string     // namespace name, NAME-n<i>
	IP        netip.Addr // underlay address, on eth0
	PodCIDR   netip.Prefix
	Gateway   netip.Addr // the pods' default gateway, on every p<j>
	NetNSPath string     // /run/netns/NAME-n<i>
}

// Pod is a simulated pod.
type Pod struct {
	Name      string // namespace name, NAME-n<i>-p<j>
	Node      string // its node's Name
	IP        netip.Addr
	NetNSPath string // /run/netns/NAME-n<i>-p<j>
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,11}$`)

// plan is the topology with every name and address decided: the pure part of
// Up.
type plan struct {
	name     string
	underlay string // namespace name
	nodeBits int    // prefix length of the underlay subnet
	nodes    []Node
	pods     [][]Pod // pods[i] are node i's
}

func (t Topology) plan() (plan, error) {
	if !nameRE.MatchString(t.Name) {
		return plan{}, fmt.Errorf("topology name %q: want 1 to 12 lowercase letters and digits, starting with a letter", t.Name)
	}
	nodeCIDR, podCIDR := t.NodeCIDR, t.PodCIDR
	if !nodeCIDR.IsValid() {
		nodeCIDR = DefaultNodeCIDR
	}
	if !podCIDR.IsValid() {
		podCIDR = DefaultPodCIDR
	}
	nodeCIDR, podCIDR = nodeCIDR.Masked(), podCIDR.Masked()
	switch {
	case !nodeCIDR.Addr().Is4() || !podCIDR.Addr().Is4():
		return plan{}, fmt.Errorf("topology %s: node CIDR %s and pod CIDR %s must be IPv4", t.Name, nodeCIDR, podCIDR)
	case podCIDR.Bits() > 24:
		return plan{}, fmt.Errorf("topology %s: pod CIDR %s: want /24 or shorter", t.Name, podCIDR)
	case nodeCIDR.Overlaps(podCIDR):
		return plan{}, fmt.Errorf("topology %s: node CIDR %s overlaps pod CIDR %s", t.Name, nodeCIDR, podCIDR)
	case t.Nodes < 1:
		return plan{}, fmt.Errorf("topology %s: %d nodes: want at least 1", t.Name, t.Nodes)
	case t.Nodes > 1<<(24-podCIDR.Bits()):
		return plan{}, fmt.Errorf("topology %s: %d nodes: pod CIDR %s has only %d /24s", t.Name, t.Nodes, podCIDR, 1<<(24-podCIDR.Bits()))
	case t.Nodes > 1<<(32-nodeCIDR.Bits())-2:
		return plan{}, fmt.Errorf("topology %s: %d nodes do not fit in node CIDR %s", t.Name, t.Nodes, nodeCIDR)
	case t.PodsPerNode < 0 || t.PodsPerNode > 253:
		return plan{}, fmt.Errorf("topology %s: %d pods per node: want 0 to 253", t.Name, t.PodsPerNode)
	}

	p := plan{name: t.Name, underlay: t.Name + "-u", nodeBits: nodeCIDR.Bits()}
	for i := range t.Nodes {
		base := podCIDR.Addr().As4()
		off := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
		off += uint32(i) << 8
		cidr := netip.PrefixFrom(addr4(off), 24)
		n := Node{
			Name:    fmt.Sprintf("%s-n%d", t.Name, i),
			IP:      nth(nodeCIDR.Addr(), i+1),
			PodCIDR: cidr,
			Gateway: nth(cidr.Addr(), 1),
		}
		n.NetNSPath = nsPath(n.Name)
		p.nodes = append(p.nodes, n)
		var pods []Pod
		for j := range t.PodsPerNode {
			name := fmt.Sprintf("%s-p%d", n.Name, j)
			pods = append(pods, Pod{Name: name, Node: n.Name, IP: nth(cidr.Addr(), j+2), NetNSPath: nsPath(name)})
		}
		p.pods = append(p.pods, pods)
	}
	return p, nil
}

// namespaces lists every namespace name of the plan, underlay first.
func (p plan) namespaces() []string {
	names := []string{p.underlay}
	for i, n := range p.nodes {
		names = append(names, n.Name)
		for _, pod := range p.pods[i] {
			names = append(names, pod.Name)
		}
	}
	return names
}

// ownedName reports whether a namespace name is one a sandbox called name
// creates: name-u, name-n<i> or name-n<i>-p<j>.
func ownedName(name, ns string) bool {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-(u|n[0-9]+(-p[0-9]+)?)$`)
	return re.MatchString(ns)
}

// RunDir is where named network namespaces are bind-mounted, as iproute2 does.
const RunDir = "/run/netns"

// EtcDir holds per-namespace /etc files, as iproute2 does: EtcDir/<netns>/hosts.
const EtcDir = "/etc/netns"

// StateDir holds one state file per sandbox, NAME.json.
const StateDir = "/run/weft-sandbox"

func nsPath(name string) string { return RunDir + "/" + name }

func nth(a netip.Addr, n int) netip.Addr {
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return addr4(v + uint32(n))
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
