//go:build !linux

package netns_test

import (
	"testing"

	"github.com/weftmesh/weft/node-proxy/netns/netnstest"
)

// TestNeedsLinux says loudly that the namespace tests did not run.
func TestNeedsLinux(t *testing.T) { netnstest.RequireRoot(t) }
