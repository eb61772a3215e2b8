// Package netnstest builds throwaway network topologies for tests: named
// network namespaces, veth pairs and addresses, all removed when the test
// ends, pass or fail. Everything is done through netlink and syscalls; no
// binary is run.
//
// Namespaces are bind-mounted as /run/netns/<prefix>-<random>, so that while
// a test runs (or after a crash that skipped its cleanup) `ip netns` shows
// them and `ip netns exec NAME nft list ruleset` inspects them. Cleanup
// removes exactly the names this package generated.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// RunDir is where named network namespaces are bind-mounted, as iproute2 does.
const RunDir = "/run/netns"

// RequireRoot skips tb, loudly, unless it runs as root on Linux.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if runtime.GOOS != "linux" {
		tb.Skipf("!!! SKIPPING: needs root on Linux: network namespaces, nftables and veth pairs (GOOS is %s)", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		tb.Skipf("!!! SKIPPING: needs root on Linux: network namespaces, nftables and veth pairs (running as uid %d)", os.Geteuid())
	}
}

// Suffix returns n random lowercase hex characters, to make names unique.
func Suffix(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)[:n]
}

// End is one end of a veth pair.
type End struct {
	NS    *netns.NS      // namespace the interface lives in
	Name  string         // interface name, at most 15 bytes
	Addrs []netip.Prefix // addresses to add, e.g. 10.1.2.3/24; IPv6 ones skip duplicate address detection
}

// CheckThreads fails tb if any OS thread of the process is in a network
// namespace other than the process's own: the proof that no goroutine was
// left inside a namespace it entered.
func CheckThreads(tb testing.TB) {
	tb.Helper()
	want, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		tb.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		tb.Fatal(err)
	}
	var stray []string
	for _, task := range tasks {
		got, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended meanwhile
		}
		if err != nil {
			tb.Fatal(err)
		}
		if got != want {
			stray = append(stray, fmt.Sprintf("thread %s in %s", task.Name(), got))
		}
	}
	if len(stray) > 0 {
		tb.Errorf("OS threads outside the process's netns %s: %s", want, strings.Join(stray, ", "))
	}
}
