//go:build linux

package cluster

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitRule(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{"-A INPUT -j KUBE-FIREWALL", []string{"-A", "INPUT", "-j", "KUBE-FIREWALL"}},
		{
			`-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
			[]string{"-A", "OUTPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"},
		},
		{`-A X -m comment --comment "say \"hi\"" -j Y`, []string{"-A", "X", "-m", "comment", "--comment", `say "hi"`, "-j", "Y"}},
		{`-A X -m comment --comment "" -j Y`, []string{"-A", "X", "-m", "comment", "--comment", "", "-j", "Y"}},
	} {
		if diff := cmp.Diff(tc.want, splitRule(tc.line)); diff != "" {
			t.Errorf("splitRule(%q) (-want +got):\n%s", tc.line, diff)
		}
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/var/lib/x`:         "/var/lib/x",
		`/var/lib/a\040b`:    "/var/lib/a b",
		`/a\011b\134c`:       "/a\tb\\c",
		`/trailing\`:         `/trailing\`,
		`/not\escape\9999xx`: `/not\escape\9999xx`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q): got %q, want %q", in, got, want)
		}
	}
}

// TestConfigs checks the settings KUBE-NODE.md says matter on these machines.
func TestConfigs(t *testing.T) {
	l := layout{"/state"}
	toml := l.containerdTOML("docker.io/weft/pause:1")
	for _, want := range []string{
		"restrict_oom_score_adj = true",
		"SystemdCgroup = false",
		"netns_mounts_under_state_dir = true",
		`sandbox_image = "docker.io/weft/pause:1"`,
		`root = "/state/containerd/root"`,
		`state = "/state/containerd/state"`,
		`Root = "/state/runc"`,
		`conf_dir = "/state/cni/net.d"`,
	} {
		if !strings.Contains(toml, want) {
			t.Errorf("containerd config lacks %q:\n%s", want, toml)
		}
	}
	kubelet := l.kubeletYAML()
	for _, want := range []string{
		"failCgroupV1: false", "cgroupDriver: cgroupfs", "failSwapOn: false",
		"imageGCHighThresholdPercent: 100", "podLogsDir: /state/pod-logs", "staticPodPath: /state/manifests",
		"- " + DNSServiceIP,
	} {
		if !strings.Contains(kubelet, want) {
			t.Errorf("kubelet config lacks %q:\n%s", want, kubelet)
		}
	}

	// The conflist must have a "plugins" list, for weft-cni to chain into.
	b, err := l.cniConflist()
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Type    string `json:"type"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range conf.Plugins {
		types = append(types, p.Type)
	}
	if diff := cmp.Diff([]string{"bridge", "portmap"}, types); diff != "" {
		t.Errorf("conflist plugins (-want +got):\n%s\n%s", diff, b)
	}
	if p := conf.Plugins[0]; p.Bridge != BridgeName || p.IPAM.Type != "host-local" || p.IPAM.DataDir != "/state/cni/ipam" {
		t.Errorf("bridge plugin: got bridge %q, ipam %q in %q; want %q, host-local in /state/cni/ipam", p.Bridge, p.IPAM.Type, p.IPAM.DataDir, BridgeName)
	}
	if conf.Name != CNINetworkName {
		t.Errorf("network name: got %q, want %q", conf.Name, CNINetworkName)
	}
}
