package redirecttest

import (
	"errors"
	"testing"

	"github.com/weftmesh/weft/node-proxy/internal/redirect"
)

func TestFake(t *testing.T) {
	var f Fake
	if err := f.Install(nil, redirect.Config{}); err != nil {
		t.Errorf("Install(valid) = %v, want nil", err)
	}
	if err := f.Install(nil, redirect.Config{OutboundPort: 15008}); err == nil {
		t.Error("Install(invalid) = nil, want the validation error")
	}
	if err := f.Remove(nil); err != nil {
		t.Errorf("Remove = %v, want nil", err)
	}
	boom := errors.New("boom")
	f.InstallErr = boom
	if err := f.Install(nil, redirect.Config{}); !errors.Is(err, boom) {
		t.Errorf("Install with InstallErr = %v, want %v", err, boom)
	}
	var got []Op
	for _, c := range f.Calls() {
		got = append(got, c.Op)
	}
	want := []Op{OpInstall, OpInstall, OpRemove, OpInstall}
	if len(got) != len(want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %s, want %s", i, got[i], want[i])
		}
	}
}
