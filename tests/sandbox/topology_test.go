package sandbox

import (
	"net/netip"
	"testing"
)

func TestPlan(t *testing.T) {
	p, err := Topology{Name: "wft1", Nodes: 2, PodsPerNode: 2}.plan()
	if err != nil {
		t.Fatal(err)
	}
	wantNodes := []struct{ name, ip, cidr, gw string }{
		{"wft1-n0", "10.199.0.1", "10.200.0.0/24", "10.200.0.1"},
		{"wft1-n1", "10.199.0.2", "10.200.1.0/24", "10.200.1.1"},
	}
	if len(p.nodes) != len(wantNodes) {
		t.Fatalf("got %d nodes, want %d", len(p.nodes), len(wantNodes))
	}
	for i, w := range wantNodes {
		n := p.nodes[i]
		if n.Name != w.name || n.IP.String() != w.ip || n.PodCIDR.String() != w.cidr || n.Gateway.String() != w.gw || n.NetNSPath != "/run/netns/"+w.name {
			t.Errorf("node %d: got %+v, want %+v", i, n, w)
		}
	}
	wantPods := [][2]string{{"wft1-n0-p0", "10.200.0.2"}, {"wft1-n0-p1", "10.200.0.3"}, {"wft1-n1-p0", "10.200.1.2"}, {"wft1-n1-p1", "10.200.1.3"}}
	var got [][2]string
	for _, pods := range p.pods {
		for _, pod := range pods {
			got = append(got, [2]string{pod.Name, pod.IP.String()})
		}
	}
	if len(got) != len(wantPods) {
		t.Fatalf("got pods %v, want %v", got, wantPods)
	}
	for i := range got {
		if got[i] != wantPods[i] {
			t.Errorf("pod %d: got %v, want %v", i, got[i], wantPods[i])
		}
	}
	wantNS := []string{"wft1-u", "wft1-n0", "wft1-n0-p0", "wft1-n0-p1", "wft1-n1", "wft1-n1-p0", "wft1-n1-p1"}
	if ns := p.namespaces(); len(ns) != len(wantNS) {
		t.Errorf("got namespaces %v, want %v", ns, wantNS)
	}

	custom, err := Topology{Name: "x", Nodes: 3, PodCIDR: netip.MustParsePrefix("172.20.0.0/22"), NodeCIDR: netip.MustParsePrefix("192.168.77.0/29")}.plan()
	if err != nil {
		t.Fatal(err)
	}
	if got := custom.nodes[2]; got.PodCIDR.String() != "172.20.2.0/24" || got.IP.String() != "192.168.77.3" {
		t.Errorf("custom node 2: got %+v, want pod CIDR 172.20.2.0/24 and IP 192.168.77.3", got)
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		top  Topology
	}{
		{"empty name", Topology{Nodes: 1}},
		{"dash in name", Topology{Name: "a-b", Nodes: 1}},
		{"long name", Topology{Name: "abcdefghijklm", Nodes: 1}},
		{"no nodes", Topology{Name: "a"}},
		{"too many pods", Topology{Name: "a", Nodes: 1, PodsPerNode: 254}},
		{"too many nodes for pod CIDR", Topology{Name: "a", Nodes: 5, PodCIDR: netip.MustParsePrefix("10.0.0.0/22")}},
		{"too many nodes for node CIDR", Topology{Name: "a", Nodes: 7, NodeCIDR: netip.MustParsePrefix("10.1.0.0/29")}},
		{"pod CIDR too long", Topology{Name: "a", Nodes: 1, PodCIDR: netip.MustParsePrefix("10.0.0.0/25")}},
		{"overlap", Topology{Name: "a", Nodes: 1, NodeCIDR: netip.MustParsePrefix("10.200.3.0/24")}},
		{"ipv6", Topology{Name: "a", Nodes: 1, PodCIDR: netip.MustParsePrefix("fd00::/48")}},
	} {
		if _, err := tc.top.plan(); err == nil {
			t.Errorf("%s: got no error, want one", tc.desc)
		}
	}
}

func TestOwnedName(t *testing.T) {
	for _, tc := range []struct {
		ns   string
		want bool
	}{
		{"wft1-u", true}, {"wft1-n0", true}, {"wft1-n12-p3", true},
		{"wft10-n0", false}, {"wft1-n0-x", false}, {"wft1", false}, {"xwft1-n0", false}, {"wft1-n-p0", false},
	} {
		if got := ownedName("wft1", tc.ns); got != tc.want {
			t.Errorf("ownedName(wft1, %q): got %v, want %v", tc.ns, got, tc.want)
		}
	}
}
