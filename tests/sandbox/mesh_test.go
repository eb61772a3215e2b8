package sandbox

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func seqUIDs() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("uid-%d", n) }
}

func TestNewMeshDefaults(t *testing.T) {
	m, err := MeshConfig{Topology: Topology{Name: "wm", Nodes: 2, PodsPerNode: 2}, BinDir: "/bin"}.newMesh(seqUIDs())
	if err != nil {
		t.Fatal(err)
	}
	type pod struct{ name, ns, node, ip, uid, netns string }
	var got []pod
	for _, p := range m.Pods() {
		if !p.Enrolled || p.ServiceAccount != "echo" || p.Labels["app"] != "echo" || p.Labels["pod"] != p.Name {
			t.Errorf("pod %s: got %+v, want enrolled, service account echo, labels app=echo pod=%s", p.Name, p, p.Name)
		}
		got = append(got, pod{p.Name, p.Namespace, p.Node, p.IP.String(), p.UID, p.NetNSPath})
	}
	want := []pod{
		{"echo-n0-p0", "demo", "wm-n0", "10.200.0.2", "uid-1", "/run/netns/wm-n0-p0"},
		{"echo-n0-p1", "demo", "wm-n0", "10.200.0.3", "uid-2", "/run/netns/wm-n0-p1"},
		{"echo-n1-p0", "demo", "wm-n1", "10.200.1.2", "uid-3", "/run/netns/wm-n1-p0"},
		{"echo-n1-p1", "demo", "wm-n1", "10.200.1.3", "uid-4", "/run/netns/wm-n1-p1"},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(pod{})); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	wantHosts := map[string]string{"echo": "10.96.0.10", "echo.demo": "10.96.0.10", "echo.demo.svc": "10.96.0.10",
		"echo.demo.svc.cluster.local": "10.96.0.10"}
	if diff := cmp.Diff(wantHosts, m.Hosts()); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	if got := m.ServiceIP("echo"); got != netip.MustParseAddr("10.96.0.10") {
		t.Errorf("ServiceIP(echo): got %s, want 10.96.0.10", got)
	}
	if got := m.ControlPlane().String(); got != "10.199.0.1:15012" {
		t.Errorf("ControlPlane: got %s, want 10.199.0.1:15012", got)
	}
	if got := m.NodeProxySocket(1); got != "/run/weft-sandbox/wm/wm-n1/node-proxy.sock" {
		t.Errorf("NodeProxySocket(1): got %s", got)
	}
	if _, ok := m.Pod("nope"); ok {
		t.Errorf("Pod(nope): got ok")
	}
}

func TestNewMeshCustom(t *testing.T) {
	cfg := MeshConfig{
		Topology:   Topology{Name: "wm", Nodes: 2, PodsPerNode: 2},
		BinDir:     "/bin",
		Namespaces: []NamespaceSpec{{Name: "demo", Enrolled: true}, {Name: "legacy"}},
		Pods: func(i, j int) PodSpec {
			p := DefaultPod(i, j)
			switch {
			case i == 1 && j == 1:
				return PodSpec{Namespace: "legacy", Name: "web", Labels: map[string]string{"app": "web"}}
			case i == 0 && j == 1:
				p.Annotations = map[string]string{"weftmesh.io/mesh": "disabled"}
			}
			return p
		},
		Services: []ServiceSpec{
			{Name: "echo", Selector: map[string]string{"app": "echo"}, Ports: []ServicePort{{Name: "http", Port: 80, TargetPort: 8080}}},
			{Name: "web", Namespace: "legacy", ClusterIP: netip.MustParseAddr("10.96.0.10"), Selector: map[string]string{"app": "web"}},
			{Name: "echo", Namespace: "legacy"},
		},
	}
	m, err := cfg.newMesh(seqUIDs())
	if err != nil {
		t.Fatal(err)
	}
	enrolled := map[string]bool{}
	for _, p := range m.Pods() {
		enrolled[p.Name] = p.Enrolled
	}
	if diff := cmp.Diff(map[string]bool{"echo-n0-p0": true, "echo-n0-p1": false, "echo-n1-p0": true, "web": false}, enrolled); diff != "" {
		t.Errorf("enrolled (-want +got):\n%s", diff)
	}
	web, _ := m.Pod("web")
	if web.ServiceAccount != "echo" || web.Labels["app"] != "web" || web.Labels["pod"] != "web" {
		t.Errorf("web: got %+v, want defaults filled in and its own labels", web)
	}
	// 10.96.0.10 is taken by web: echo gets the next one. "echo" alone is
	// ambiguous and is not a host name.
	wantHosts := map[string]string{
		"echo.demo": "10.96.0.11", "echo.demo.svc": "10.96.0.11", "echo.demo.svc.cluster.local": "10.96.0.11",
		"web": "10.96.0.10", "web.legacy": "10.96.0.10", "web.legacy.svc": "10.96.0.10", "web.legacy.svc.cluster.local": "10.96.0.10",
		"echo.legacy": "10.96.0.12", "echo.legacy.svc": "10.96.0.12", "echo.legacy.svc.cluster.local": "10.96.0.12",
	}
	if diff := cmp.Diff(wantHosts, m.Hosts()); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	if got := m.ServiceIP("echo"); got.IsValid() {
		t.Errorf("ServiceIP(echo), ambiguous: got %s, want none", got)
	}
}

func TestNewMeshErrors(t *testing.T) {
	top := Topology{Name: "wm", Nodes: 2, PodsPerNode: 1}
	for _, tc := range []struct {
		desc string
		cfg  MeshConfig
	}{
		{"no BinDir", MeshConfig{Topology: top}},
		{"bad topology", MeshConfig{Topology: Topology{Name: "a-b", Nodes: 1}, BinDir: "/bin"}},
		{"undeclared namespace", MeshConfig{Topology: top, BinDir: "/bin", Pods: func(i, j int) PodSpec { return PodSpec{Namespace: "other"} }}},
		{"duplicate pod", MeshConfig{Topology: top, BinDir: "/bin", Pods: func(i, j int) PodSpec { return PodSpec{Name: "same"} }}},
		{"bad pod name", MeshConfig{Topology: top, BinDir: "/bin", Pods: func(i, j int) PodSpec { return PodSpec{Name: fmt.Sprintf("Pod_%d", i)} }}},
		{"duplicate namespace", MeshConfig{Topology: top, BinDir: "/bin", Namespaces: []NamespaceSpec{{Name: "demo"}, {Name: "demo"}}}},
		{"duplicate service", MeshConfig{Topology: top, BinDir: "/bin", Services: []ServiceSpec{{Name: "a"}, {Name: "a"}}}},
		{"duplicate cluster IP", MeshConfig{Topology: top, BinDir: "/bin", Services: []ServiceSpec{
			{Name: "a", ClusterIP: netip.MustParseAddr("10.96.1.1")}, {Name: "b", ClusterIP: netip.MustParseAddr("10.96.1.1")}}}},
		{"cluster IP in a pod CIDR", MeshConfig{Topology: top, BinDir: "/bin", Services: []ServiceSpec{{Name: "a", ClusterIP: netip.MustParseAddr("10.200.1.9")}}}},
		{"bad port", MeshConfig{Topology: top, BinDir: "/bin", Services: []ServiceSpec{{Name: "a", Ports: []ServicePort{{Port: 0}}}}}},
	} {
		if _, err := tc.cfg.newMesh(seqUIDs()); err == nil {
			t.Errorf("%s: got no error, want one", tc.desc)
		}
	}
}

// TestManifests decodes the config dir's objects as the control plane
// does (into the Kubernetes types) and checks what a cluster would hold.
func TestManifests(t *testing.T) {
	cfg := MeshConfig{
		Topology:   Topology{Name: "wm", Nodes: 2, PodsPerNode: 1},
		BinDir:     "/bin",
		Namespaces: []NamespaceSpec{{Name: "demo", Enrolled: true, Labels: map[string]string{"team": "a"}}, {Name: "legacy"}},
		Pods: func(i, j int) PodSpec {
			if i == 1 {
				return PodSpec{Namespace: "legacy", Name: "web", ServiceAccount: "web"}
			}
			return DefaultPod(i, j)
		},
		Extra: []string{"apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "---\nkind: Y\n"},
	}
	m, err := cfg.newMesh(seqUIDs())
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.manifests()
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]string{}
	var pods []corev1.Pod
	var svcs []corev1.Service
	var nss []corev1.Namespace
	for _, doc := range bytes.Split(b, []byte("\n---\n"))[1:] {
		var tm struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		switch tm.Kind {
		case "Pod":
			pods = append(pods, decodeStrict[corev1.Pod](t, doc))
		case "Service":
			svcs = append(svcs, decodeStrict[corev1.Service](t, doc))
		case "Namespace":
			nss = append(nss, decodeStrict[corev1.Namespace](t, doc))
		case "ServiceAccount":
			sa := decodeStrict[corev1.ServiceAccount](t, doc)
			kinds[tm.Kind] = append(kinds[tm.Kind], sa.Namespace+"/"+sa.Name)
			continue
		}
		if tm.APIVersion != "v1" {
			t.Errorf("%s: apiVersion %s, want v1", tm.Kind, tm.APIVersion)
		}
	}
	if diff := cmp.Diff([]string{"demo/echo", "legacy/web"}, kinds["ServiceAccount"]); diff != "" {
		t.Errorf("service accounts (-want +got):\n%s", diff)
	}
	if len(nss) != 2 || nss[0].Annotations["weftmesh.io/mesh"] != "enabled" || nss[0].Labels["team"] != "a" || nss[1].Annotations["weftmesh.io/mesh"] != "" {
		t.Errorf("namespaces: got %+v, want demo enrolled with label team=a, legacy not", nss)
	}
	if len(pods) != 2 {
		t.Fatalf("got %d pods, want 2", len(pods))
	}
	p := pods[0]
	if p.Name != "echo-n0-p0" || p.Namespace != "demo" || string(p.UID) != "uid-1" || p.Spec.NodeName != "wm-n0" ||
		p.Spec.ServiceAccountName != "echo" || p.Status.PodIP != "10.200.0.2" || p.Labels["app"] != "echo" ||
		p.Status.Phase != corev1.PodRunning || len(p.Status.Conditions) != 1 || p.Status.Conditions[0].Status != corev1.ConditionTrue {
		t.Errorf("pod 0: got %+v", p)
	}
	if p := pods[1]; p.Name != "web" || p.Namespace != "legacy" || p.Spec.NodeName != "wm-n1" || p.Status.PodIP != "10.200.1.2" {
		t.Errorf("pod 1: got %+v", p)
	}
	if len(svcs) != 1 {
		t.Fatalf("got %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if s.Name != "echo" || s.Namespace != "demo" || s.Spec.ClusterIP != "10.96.0.10" || s.Spec.Selector["app"] != "echo" || len(s.Spec.Ports) != 3 {
		t.Fatalf("service: got %+v", s)
	}
	type port struct {
		Name, AppProtocol string
		Port, Target      int
	}
	var ports []port
	for _, sp := range s.Spec.Ports {
		ports = append(ports, port{sp.Name, strOr(sp.AppProtocol), int(sp.Port), sp.TargetPort.IntValue()})
	}
	if diff := cmp.Diff([]port{{"http", "http", 8080, 8080}, {"grpc", "grpc", 9090, 9090}, {"tcp-echo", "", 7070, 7070}}, ports); diff != "" {
		t.Errorf("service ports (-want +got):\n%s", diff)
	}

	extra := string(m.extraManifests())
	if strings.Count(extra, "---\n") != 2 || !strings.Contains(extra, "---\nkind: Y\n") {
		t.Errorf("extra manifests: got\n%s\nwant two documents", extra)
	}
}

func decodeStrict[T any](t *testing.T, doc []byte) T {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		t.Fatalf("%v in:\n%s", err, doc)
	}
	return v
}

func strOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
