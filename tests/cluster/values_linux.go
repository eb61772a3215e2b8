//go:build linux

package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// HelmValues are the chart values this cluster needs (charts/weft): where
// containerd mounts the pods' network namespaces, the CNI directories, the
// host paths under HostDir (so Stop removes them), the bridge address that
// kubelet probes come from, and the locally imported images (never
// pulled). Start writes them to HelmValuesFile.
func (c *Cluster) HelmValues() string {
	return fmt.Sprintf(`# Written by tests/cluster for its single-node cluster: helm install weft charts/weft --values THIS-FILE
controlPlane:
  image:
    tag: %[1]q
    pullPolicy: Never
nodeProxy:
  image:
    tag: %[1]q
    pullPolicy: Never
  netnsDir: %[2]s
  enrollSocketDir: %[3]s
  stateDir: %[4]s
  probeSources: [%[5]s]
cni:
  binDir: %[6]s
  confDir: %[7]s
`, c.ImageTag, c.NetnsDir, filepath.Join(c.HostDir, "weft", "run"), filepath.Join(c.HostDir, "weft", "node-proxy"),
		NodeIP, c.CNIBinDir, c.CNIConfDir)
}

// HelmValuesFile is where Start writes HelmValues.
func (c *Cluster) HelmValuesFile() string { return filepath.Join(c.Dir, "weft-values.yaml") }

func (c *Cluster) writeHelmValues() error {
	return os.WriteFile(c.HelmValuesFile(), []byte(c.HelmValues()), 0o644)
}

// Cleanup removes what a cluster in stateDir (empty: DefaultStateDir)
// left behind when its process died without Stop: pods, processes, chains,
// the bridge, mounts, cgroups, sysctls. It waits for a running cluster to
// end first (the machine lock).
func Cleanup(ctx context.Context, stateDir string, logf func(string, ...any)) error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	binDir, err := resolveBinDir(ctx, "", logf)
	if err != nil {
		return err
	}
	lock, err := lockMachine(ctx, logf)
	if err != nil {
		return err
	}
	defer lock.Close()
	return cleanupLeftover(ctx, layout{dir}, binDir, logf)
}
