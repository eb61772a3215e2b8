//go:build linux

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostState is what Start records about the machine before it changes it,
// in state.json under the state directory, so that Stop (or the next Start,
// after a crash) can put the machine back.
type hostState struct {
	// Sysctls maps /proc/sys paths to their values before Start.
	Sysctls map[string]string `json:"sysctls"`
	// Existed lists the host paths outside the state directory that the
	// components may create, and whether each existed before Start.
	Existed map[string]bool `json:"existed"`
	// NFTTables are the nftables tables ("family name") before Start.
	NFTTables []string `json:"nftTables"`
	// Procs are the components started, by name.
	Procs map[string]procRecord `json:"procs"`
}

// procRecord identifies a component's process for a later cleanup: the PID
// and the binary, so a recycled PID is never killed.
type procRecord struct {
	PID int    `json:"pid"`
	Bin string `json:"bin"`
}

// sysctls are the settings Start or the components change: the bridge
// plugin and Start enable forwarding and bridge netfilter (Services between
// pods on one bridge need it); the kubelet sets its kernel tunables;
// kube-proxy would set route_localnet and conntrack limits (its config asks
// it not to, but they are restored anyway).
var sysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv6/conf/all/forwarding",
	"net/bridge/bridge-nf-call-iptables",
	"net/bridge/bridge-nf-call-ip6tables",
	"net/ipv4/conf/all/route_localnet",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
	"net/netfilter/nf_conntrack_max",
	"net/netfilter/nf_conntrack_tcp_timeout_established",
	"net/netfilter/nf_conntrack_tcp_timeout_close_wait",
}

// setSysctls are what Start itself sets.
var setSysctls = map[string]string{
	"net/ipv4/ip_forward":                "1",
	"net/bridge/bridge-nf-call-iptables": "1",
}

// hostPaths are created by the components outside the state directory
// whatever their configuration says. Paths that did not exist before Start
// are removed by Stop; see removeHostPaths for how each is treated.
var hostPaths = []string{
	"/var/lib/kubelet",
	"/var/log/containers",
	"/var/log/pods",
	"/var/lib/cni",
	"/run/containerd",
	"/etc/kubernetes",
	"/run/mount", // libmount's, when the kubelet runs mount(8)
}

func recordHost() (*hostState, error) {
	st := &hostState{Sysctls: map[string]string{}, Existed: map[string]bool{}, Procs: map[string]procRecord{}}
	for _, s := range sysctls {
		b, err := os.ReadFile(filepath.Join("/proc/sys", s))
		if err != nil {
			continue // not on this kernel
		}
		st.Sysctls[s] = strings.TrimSpace(string(b))
	}
	for _, p := range hostPaths {
		_, err := os.Lstat(p)
		st.Existed[p] = err == nil
	}
	st.NFTTables = nftTables()
	return st, nil
}

func (st *hostState) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func loadHostState(path string) (*hostState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st := &hostState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func applySysctls() error {
	for s, v := range setSysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", s), []byte(v), 0o644); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", s, v, err)
		}
	}
	return nil
}

// restoreSysctls writes back every recorded value that changed.
func restoreSysctls(orig map[string]string) error {
	var errs []error
	for s, v := range orig {
		p := filepath.Join("/proc/sys", s)
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", s, v, err))
		}
	}
	return errors.Join(errs...)
}

// createBridge creates the pods' bridge with NodeIP on it, up. The bridge
// CNI plugin finds it and attaches the pods. It exists before the first pod
// because the apiserver, the kubelet and CoreDNS listen on NodeIP.
func createBridge() error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, MTU: 1500}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %s: %w", BridgeName, err)
	}
	_, ipnet, _ := net.ParseCIDR(PodCIDR)
	ipnet.IP = net.ParseIP(NodeIP).To4()
	if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("address %s on %s: %w", ipnet, BridgeName, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("set %s up: %w", BridgeName, err)
	}
	// Service addresses route to the bridge, not to the default gateway:
	// kube-proxy rewrites the destination of a Service's packets after this
	// route is chosen, and a packet for a Service it has not programmed yet
	// must not leave the machine.
	_, svcNet, _ := net.ParseCIDR(ServiceCIDR)
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: br.Attrs().Index, Dst: svcNet, Scope: netlink.SCOPE_LINK}); err != nil {
		return fmt.Errorf("route %s to %s: %w", ServiceCIDR, BridgeName, err)
	}
	return nil
}

// deleteBridge deletes the bridge and any veth still attached to it.
func deleteBridge() error {
	br, err := netlink.LinkByName(BridgeName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find bridge %s: %w", BridgeName, err)
	}
	var errs []error
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("delete %s: %w", l.Attrs().Name, err))
				}
			}
		}
	}
	if err := netlink.LinkDel(br); err != nil {
		errs = append(errs, fmt.Errorf("delete bridge %s: %w", BridgeName, err))
	}
	return errors.Join(errs...)
}

// bridgeExists reports whether the pods' bridge exists.
func bridgeExists() bool {
	_, err := netlink.LinkByName(BridgeName)
	return err == nil
}

// makeShared bind-mounts dir on itself and makes it a shared mount, so that
// hostPath volumes under it can use mountPropagation (the chart's node proxy
// mounts the netns directory HostToContainer, which containerd refuses on a
// private mount, and / is private here).
func makeShared(dir string) error {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// mountsUnder lists the mount points at or under dir, innermost (latest)
// first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// mountinfo lists parents before children; unmount in reverse.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountAll unmounts everything at or under dir.
func unmountAll(dir string) error {
	for pass := 0; pass < 5; pass++ {
		mps := mountsUnder(dir)
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			if err := unix.Unmount(mp, 0); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				_ = unix.Unmount(mp, unix.MNT_DETACH)
			}
		}
	}
	if mps := mountsUnder(dir); len(mps) > 0 {
		return fmt.Errorf("still mounted under %s: %s", dir, strings.Join(mps, ", "))
	}
	return nil
}

// kubepodsCgroups lists every cgroup directory named kubepods (the kubelet's
// root with cgroupfs) or under it, in every mounted hierarchy, deepest
// first.
func kubepodsCgroups() []string {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if st, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil && st.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/kubepods") // cgroup v2
	}
	var dirs []string
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// cgroupPIDs lists the processes in the cgroups dirs.
func cgroupPIDs(dirs []string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeKubepods kills whatever still runs in the kubelet's cgroups (by the
// PIDs listed in them) and removes the cgroups.
func removeKubepods() error {
	dirs := kubepodsCgroups()
	if len(dirs) == 0 {
		return nil
	}
	if err := killPIDs(cgroupPIDs(dirs), 10*time.Second); err != nil {
		return err
	}
	var last error
	for attempt := 0; attempt < 20; attempt++ {
		last = nil
		for _, d := range kubepodsCgroups() {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				last = fmt.Errorf("remove cgroup %s: %w", d, err)
			}
		}
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

// sweepIPTables removes every KUBE-* and CNI-* chain (and the jumps to them
// from other chains) from the filter, nat, mangle and raw tables, for IPv4
// and IPv6. The kubelet, kube-proxy and the portmap plugin create them; the
// machine has no other Kubernetes, so they are all ours.
func sweepIPTables(ctx context.Context, binDir string) error {
	var errs []error
	for _, v := range []string{"iptables", "ip6tables"} {
		bin := filepath.Join(binDir, v)
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		save := bin + "-save"
		if _, err := os.Stat(save); err != nil {
			if save, err = exec.LookPath(v + "-save"); err != nil {
				errs = append(errs, fmt.Errorf("%s-save: %w", v, err))
				continue
			}
		}
		for _, table := range []string{"filter", "nat", "mangle", "raw"} {
			if err := sweepTable(ctx, bin, save, table); err != nil {
				errs = append(errs, fmt.Errorf("%s -t %s: %w", v, table, err))
			}
		}
	}
	return errors.Join(errs...)
}

func ours(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-")
}

func sweepTable(ctx context.Context, bin, save, table string) error {
	out, err := exec.CommandContext(ctx, save, "-t", table).Output()
	if err != nil {
		return nil // table not available on this kernel
	}
	var chains []string
	var jumps [][]string // -D arguments of rules in other chains that jump to ours
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			name := strings.Fields(line[1:])[0]
			if ours(name) {
				chains = append(chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			args := splitRule(line)
			if len(args) < 2 || ours(args[1]) {
				continue
			}
			for i := 2; i+1 < len(args); i++ {
				if (args[i] == "-j" || args[i] == "-g") && ours(args[i+1]) {
					jumps = append(jumps, append([]string{"-D"}, args[1:]...))
					break
				}
			}
		}
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, bin, append([]string{"-w", "5", "-t", table}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	var errs []error
	for _, j := range jumps {
		if err := run(j...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range chains {
		if err := run("-F", c); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range chains {
		if err := run("-X", c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// splitRule splits an iptables-save rule line into arguments, honouring the
// double quotes (with \" escapes) iptables-save puts around comments.
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			have = true
		case c == ' ' && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}

// nftTables lists the nftables tables as "family name", or nil when nft is
// not available.
func nftTables() []string {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return nil
	}
	var tables []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables
}

// removeNewNFTTables deletes the nftables tables the components created
// that were not there before Start: kube-proxy's and the kubelet's
// ("kube-proxy", "kubelet", made even in iptables mode), and the tables
// iptables-nft made for the KUBE-*/CNI-* chains once they are empty again.
func removeNewNFTTables(ctx context.Context, before []string) error {
	had := map[string]bool{}
	for _, t := range before {
		had[t] = true
	}
	iptablesTables := map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}
	var errs []error
	for _, t := range nftTables() {
		f := strings.Fields(t)
		if had[t] {
			continue
		}
		switch {
		case f[1] == "kube-proxy" || f[1] == "kubelet":
		case (f[0] == "ip" || f[0] == "ip6") && iptablesTables[f[1]] && nftTableEmpty(ctx, f[0], f[1]):
		default:
			continue
		}
		if out, err := exec.CommandContext(ctx, "nft", "delete", "table", f[0], f[1]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("nft delete table %s: %w: %s", t, err, bytes.TrimSpace(out)))
		}
	}
	return errors.Join(errs...)
}

// nftTableEmpty reports whether the table has chains but no rules.
func nftTableEmpty(ctx context.Context, family, name string) bool {
	out, err := exec.CommandContext(ctx, "nft", "list", "table", family, name).Output()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "", line == "}", strings.HasPrefix(line, "table "), strings.HasPrefix(line, "chain "),
			strings.HasPrefix(line, "type "), strings.HasPrefix(line, "policy "):
		default:
			return false
		}
	}
	return true
}

// removeHostPaths removes what the components left outside the state
// directory. A path that existed before Start is left alone, except for the
// entries that are certainly ours; one that did not is removed, carefully
// where something else on the machine could share it.
func removeHostPaths(st *hostState, stateDir string) error {
	var errs []error
	// CNI result cache: files named after our network, and after
	// containerd's built-in loopback network (no other runtime runs here).
	results, _ := filepath.Glob(filepath.Join("/var/lib/cni/results", CNINetworkName+"-*"))
	loopback, _ := filepath.Glob("/var/lib/cni/results/cni-loopback-*")
	results = append(results, loopback...)
	for _, r := range results {
		if err := os.Remove(r); err != nil {
			errs = append(errs, err)
		}
	}
	// Log symlinks into our pod log directory.
	if ents, err := os.ReadDir("/var/log/containers"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/var/log/containers", e.Name())
			if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, stateDir+"/") {
				os.Remove(p)
			}
		}
	}
	// Shim sockets nobody listens on any more.
	if ents, err := os.ReadDir("/run/containerd/s"); err == nil {
		for _, e := range ents {
			p := filepath.Join("/run/containerd/s", e.Name())
			if c, err := net.DialTimeout("unix", p, 200*time.Millisecond); err == nil {
				c.Close()
				continue
			}
			os.Remove(p)
		}
	}
	for _, p := range hostPaths {
		if st == nil || st.Existed[p] {
			continue // unknown after a crash without state.json, or not ours
		}
		switch p {
		case "/var/lib/kubelet", "/etc/kubernetes":
			// Only the kubelet uses these.
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		default:
			removeEmptyDirs(p)
		}
	}
	return errors.Join(errs...)
}

// removeEmptyDirs removes dir and the directories under it, as long as they
// are empty (deepest first).
func removeEmptyDirs(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(dirs[i])
	}
}
