package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSandboxBinDir(t *testing.T) {
	got, err := sandboxBinDir("rel/dir")
	if want, _ := filepath.Abs("rel/dir"); err != nil || got != want {
		t.Errorf("sandboxBinDir(rel/dir): got %q, %v; want %q", got, err, want)
	}

	// No --bin: ./bin if it holds the binaries (the test binary's own
	// directory does not).
	dir := t.TempDir()
	t.Chdir(dir)
	if _, err := sandboxBinDir(""); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("sandboxBinDir with no binaries: got %v, want an error saying to run make build", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "weft-control-plane"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err = sandboxBinDir("")
	if want, _ := filepath.EvalSymlinks(filepath.Join(dir, "bin")); err != nil || (got != want && got != filepath.Join(dir, "bin")) {
		t.Errorf("sandboxBinDir with ./bin: got %q, %v; want %q", got, err, want)
	}
}
