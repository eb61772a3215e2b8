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
