package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Binaries maps each program a mesh runs to its package in the module.
var Binaries = map[string]string{
	"weft-control-plane": "github.com/weftmesh/weft/control-plane/cmd/weft-control-plane",
	"weft-node-proxy":    "github.com/weftmesh/weft/node-proxy/cmd/weft-node-proxy",
	"weft-cni":           "github.com/weftmesh/weft/node-proxy/cmd/weft-cni",
	"weft-echo":          "github.com/weftmesh/weft/tests/apps/echo/cmd/weft-echo",
	"weftctl":            "github.com/weftmesh/weft/weftctl",
}

// MeshBinaries are the programs MeshConfig.Up starts.
var MeshBinaries = []string{"weft-control-plane", "weft-node-proxy", "weft-cni", "weft-echo"}

// BuildBinaries builds the named programs (keys of Binaries) into dir with
// the go command found in PATH (`go test` puts its own first), for tests and
// benchmarks that must not depend on a stale bin/.
func BuildBinaries(dir string, names ...string) error {
	return BuildBinariesFlags(dir, nil, names...)
}

// BuildBinariesFlags is BuildBinaries with extra `go build` flags, such as
// -race for end-to-end tests that want the race detector in the programs.
func BuildBinariesFlags(dir string, flags []string, names ...string) error {
	var pkgs []string
	for _, name := range names {
		pkg, ok := Binaries[name]
		if !ok {
			return fmt.Errorf("build binaries: unknown program %s", name)
		}
		pkgs = append(pkgs, pkg)
	}
	if len(pkgs) == 0 {
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build binaries: %w", err)
	}
	args := append([]string{"build", "-o", strings.TrimSuffix(dir, "/") + "/"}, flags...)
	cmd := exec.Command(goBin, append(args, pkgs...)...)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}
