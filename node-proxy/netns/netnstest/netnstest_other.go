//go:build !linux

package netnstest

import (
	"testing"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// New skips tb: network namespaces need Linux.
func New(tb testing.TB, prefix string) *netns.NS {
	tb.Helper()
	RequireRoot(tb)
	return nil
}

// Veth skips tb: veth pairs need Linux.
func Veth(tb testing.TB, a, b End) {
	tb.Helper()
	RequireRoot(tb)
}
