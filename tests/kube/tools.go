package kube

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ToolsDir is where hack/tools.sh installs the pinned tools (helm among
// them): $WEFT_CACHE/tools, by default ~/.cache/weft/tools.
func ToolsDir() string {
	cache := os.Getenv("WEFT_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "weft")
	}
	return filepath.Join(cache, "tools")
}

// HelmPath finds the pinned helm in ToolsDir, else on PATH.
func HelmPath() (string, error) {
	p := filepath.Join(ToolsDir(), "helm")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no helm in %s or on PATH: run hack/tools.sh", ToolsDir())
}
