//go:build linux

package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// teardown stops everything and restores the machine. procs are the running
// components (nil after a crash: then st.Procs, checked against their
// binaries, are killed instead). Every step runs whatever failed before.
//
// Order: the kubelet first (or it would restart pods), then the pods through
// the CRI (CNI DEL frees their addresses and portmap rules), then containerd,
// any shim or container process left (by PID: shims name the state
// directory on their command line, containers are in the kubelet's cgroups),
// the other components, the iptables chains and nftables tables, the bridge,
// the mounts, the cgroups, the host paths, the sysctls, and last the state
// directory.
func teardown(l layout, st *hostState, procs map[string]*process, binDir string, logf func(string, ...any)) error {
	var errs []error
	note := func(step string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", step, err))
		}
	}
	stop := func(name string) {
		if p := procs[name]; p != nil {
			note("stop "+name, p.Stop(stopGrace))
			return
		}
		if st == nil {
			return
		}
		if r, ok := st.Procs[name]; ok && r.PID > 0 {
			// After a crash: only if the PID still runs the recorded binary.
			bin, _ := filepath.EvalSymlinks(r.Bin) // containerd is a link to /usr/bin
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.PID)); err == nil && (exe == r.Bin || exe == bin) {
				note("kill "+name, killPIDs([]int{r.PID}, 10*time.Second))
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stop("kubelet")
	if p := procs["containerd"]; p != nil && !p.Exited() {
		if cri, err := dialCRI(l.containerdSocket()); err != nil {
			note("CRI", err)
		} else {
			n, err := cri.stopAllPods(ctx, 30*time.Second)
			note("stop pods through CRI", err)
			logf("cluster: stopped %d pod sandboxes through the CRI", n)
			cri.Close()
		}
	}
	stop("containerd")
	note("kill shims", killPIDs(pidsReferencing(l.dir), 10*time.Second))
	note("kill pod processes", killPIDs(cgroupPIDs(kubepodsCgroups()), 10*time.Second))
	for _, name := range []string{"kube-proxy", "coredns", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stop(name)
	}
	// Anything else still naming the state directory (a component of a
	// crashed run whose PID was not recorded yet).
	note("kill leftovers", killPIDs(pidsReferencing(l.dir), 10*time.Second))

	if binDir != "" {
		note("iptables", sweepIPTables(ctx, binDir))
	}
	if st != nil {
		note("nftables", removeNewNFTTables(ctx, st.NFTTables))
	}
	note("bridge", deleteBridge())
	note("mounts", unmountAll(l.dir))
	note("cgroups", removeKubepods())
	note("host paths", removeHostPaths(st, l.dir))
	if st != nil {
		note("sysctls", restoreSysctls(st.Sysctls))
	}
	if len(mountsUnder(l.dir)) == 0 {
		note("state dir", os.RemoveAll(l.dir))
	} else {
		note("state dir", fmt.Errorf("not removed: still has mounts"))
	}
	err := errors.Join(errs...)
	if err != nil {
		logf("cluster: teardown: %v", err)
	}
	return err
}

// cleanupLeftover tears down what a run that never called Stop left in the
// state directory l.dir (and on the machine), if anything.
func cleanupLeftover(ctx context.Context, l layout, binDir string, logf func(string, ...any)) error {
	_, statErr := os.Stat(l.dir)
	if errors.Is(statErr, os.ErrNotExist) && !bridgeExists() && len(kubepodsCgroups()) == 0 {
		return nil
	}
	logf("cluster: cleaning up after an earlier run in %s", l.dir)
	st, err := loadHostState(l.stateFile())
	if err != nil {
		logf("cluster: no usable %s (%v): sysctls and host paths cannot be restored", filepath.Base(l.stateFile()), err)
		st = nil
	}
	return teardown(l, st, nil, binDir, logf)
}
