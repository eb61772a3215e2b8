package enroll

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStoreRoundTrip(t *testing.T) {
	s := Store{Dir: filepath.Join(t.TempDir(), "pods")}
	if pods, err := s.List(); err != nil || len(pods) != 0 {
		t.Fatalf("List of a missing dir = %v, %v; want empty, nil", pods, err)
	}
	a := Pod{UID: "b-uid", Namespace: "shop", Name: "cart", NetNSPath: "/var/run/netns/cni-1"}
	b := Pod{UID: "a-uid", Namespace: "shop", Name: "web", NetNSPath: "/var/run/netns/cni-2"}
	for _, p := range []Pod{a, b, a} {
		if err := s.Save(p); err != nil {
			t.Fatal(err)
		}
	}
	a.NetNSPath = "/var/run/netns/cni-3"
	if err := s.Save(a); err != nil {
		t.Fatal(err)
	}
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Pod{b, a}, got, cmp.Comparer(func(x, y Pod) bool { return x.Ref() == y.Ref() && x.NetNSPath == y.NetNSPath })); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if err := s.Delete(b.UID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(b.UID); err != nil {
		t.Errorf("second Delete: %v, want nil", err)
	}
	got, err = s.List()
	if err != nil || len(got) != 1 || got[0].UID != a.UID {
		t.Errorf("List after Delete = %v, %v; want [%s]", got, err, a.UID)
	}
}

func TestStoreRejectsBadRecords(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := s.Save(Pod{UID: "../escape", Namespace: "n", Name: "p"}); err == nil {
		t.Error("Save with uid ../escape succeeded")
	}
	if err := s.Delete("../escape"); err == nil {
		t.Error("Delete ../escape succeeded")
	}
	good := Pod{UID: "good", Namespace: "n", Name: "p"}
	if err := s.Save(good); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"corrupt.json": "{not json",
		"renamed.json": `{"uid":"other","namespace":"n","name":"p"}`,
		".pod-1.tmp":   "partial",
		"notes.txt":    "ignored",
	} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List()
	if len(got) != 1 || got[0].UID != "good" {
		t.Errorf("List = %v, want only the good record", got)
	}
	if err == nil || !strings.Contains(err.Error(), "corrupt.json") || !strings.Contains(err.Error(), "holds uid other") {
		t.Errorf("List error = %v, want both bad records reported", err)
	}
}
