package redirect

import "github.com/weftmesh/weft/node-proxy/netns"

// Redirector installs and removes the capture rules of one pod.
type Redirector interface {
	// Install makes cfg's rules the only content of the pod's capture table
	// in ns, replacing what was there. It fails, changing nothing, if cfg is
	// invalid or the kernel refuses the rules; the pod must then not be
	// acknowledged (fail closed).
	Install(ns *netns.NS, cfg Config) error
	// Remove deletes the pod's capture table from ns and nothing else. It
	// succeeds if the table is already gone.
	Remove(ns *netns.NS) error
}

// TableName is the name of the nftables table, of family inet, that holds
// every rule this package installs in a pod's namespace.
const TableName = "weft"
