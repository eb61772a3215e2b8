//go:build !linux

package redirect

import (
	"errors"

	"github.com/weftmesh/weft/node-proxy/netns"
)

// NFTables needs Linux; elsewhere every call fails with errors.ErrUnsupported.
type NFTables struct{}

var _ Redirector = NFTables{}

// Install is not supported off Linux.
func (NFTables) Install(ns *netns.NS, cfg Config) error { return errors.ErrUnsupported }

// Remove is not supported off Linux.
func (NFTables) Remove(ns *netns.NS) error { return errors.ErrUnsupported }
