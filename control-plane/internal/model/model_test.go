package model

import "testing"

func TestEnrollmentOf(t *testing.T) {
	on := &Namespace{Name: "a", Annotations: map[string]string{MeshKey: MeshEnabled}}
	onByLabel := &Namespace{Name: "b", Labels: map[string]string{MeshKey: MeshEnabled}}
	off := &Namespace{Name: "c"}
	wrongValue := &Namespace{Name: "d", Annotations: map[string]string{MeshKey: "true"}}
	pod := &Pod{Name: "p"}
	optOut := &Pod{Name: "p", Annotations: map[string]string{MeshKey: MeshDisabled}}
	hostNet := &Pod{Name: "p", HostNetwork: true}
	tests := []struct {
		name string
		ns   *Namespace
		pod  *Pod
		want Enrollment
	}{
		{"annotated namespace", on, pod, Enrolled},
		{"labelled namespace", onByLabel, pod, Enrolled},
		{"plain namespace", off, pod, NamespaceNotEnrolled},
		{"value other than enabled", wrongValue, pod, NamespaceNotEnrolled},
		{"no namespace object", nil, pod, NamespaceNotEnrolled},
		{"pod opted out", on, optOut, PodOptedOut},
		{"hostNetwork in an enrolled namespace", on, hostNet, HostNetwork},
	}
	for _, tc := range tests {
		if got := EnrollmentOf(tc.ns, tc.pod); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestWorkloadName(t *testing.T) {
	hash := map[string]string{PodTemplateHashLabel: "7d9f8b6c5", AppLabel: "shop"}
	tests := []struct {
		name        string
		kind, owner string
		labels      map[string]string
		want        string
	}{
		{"ReplicaSet of a Deployment", "ReplicaSet", "web-7d9f8b6c5", hash, "web"},
		{"ReplicaSet, dashes in the Deployment name", "ReplicaSet", "my-web-app-7d9f8b6c5", hash, "my-web-app"},
		{"ReplicaSet without pod-template-hash", "ReplicaSet", "web-7d9f8b6c5", map[string]string{AppLabel: "shop"}, "web-7d9f8b6c5"},
		{"ReplicaSet, hash is not its suffix", "ReplicaSet", "web-abc", hash, "web-abc"},
		{"ReplicaSet, hash without the dash", "ReplicaSet", "web7d9f8b6c5", hash, "web7d9f8b6c5"},
		{"ReplicaSet named only -hash", "ReplicaSet", "-7d9f8b6c5", hash, "-7d9f8b6c5"},
		{"StatefulSet", "StatefulSet", "db", map[string]string{AppLabel: "x"}, "db"},
		{"DaemonSet", "DaemonSet", "agent", nil, "agent"},
		{"Job", "Job", "migrate-29000000", nil, "migrate-29000000"},
		{"other controller keeps a hash-like suffix", "Rollout", "web-7d9f8b6c5", hash, "web-7d9f8b6c5"},
		{"no owner: app.kubernetes.io/name first", "", "", map[string]string{AppNameLabel: "cart", AppLabel: "c"}, "cart"},
		{"no owner: app", "", "", map[string]string{AppNameLabel: "", AppLabel: "c"}, "c"},
		{"no owner, no labels: pod name", "", "", nil, "pod-1"},
		{"owner kind without name is no owner", "ReplicaSet", "", map[string]string{AppLabel: "c"}, "c"},
	}
	for _, tc := range tests {
		if got := WorkloadName(tc.kind, tc.owner, tc.labels, "pod-1"); got != tc.want {
			t.Errorf("%s: WorkloadName(%q, %q, %v) = %q, want %q", tc.name, tc.kind, tc.owner, tc.labels, got, tc.want)
		}
	}
}
