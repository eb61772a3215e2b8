//go:build !linux

package redirect_test

import (
	"testing"

	"github.com/weftmesh/weft/node-proxy/netns/netnstest"
)

// TestNeedsLinux says loudly that the nftables tests did not run.
func TestNeedsLinux(t *testing.T) { netnstest.RequireRoot(t) }
