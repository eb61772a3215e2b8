package certs

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultTrustDomain is the trust domain used when none is configured.
const DefaultTrustDomain = "cluster.local"

// WorkloadID returns spiffe://<td>/ns/<namespace>/sa/<serviceAccount>.
func WorkloadID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	id, err := spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("workload identity for %s/%s: %w", namespace, serviceAccount, err)
	}
	return id, nil
}

// NodeID returns spiffe://<td>/weft/node/<node>, the identity of a node proxy.
func NodeID(td spiffeid.TrustDomain, node string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(td, "weft", "node", node)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("node identity for %q: %w", node, err)
	}
	return id, nil
}

// ControlPlaneID returns spiffe://<td>/weft/control-plane, the identity the
// control plane serves port 15012 with.
func ControlPlaneID(td spiffeid.TrustDomain) spiffeid.ID {
	return spiffeid.RequireFromSegments(td, "weft", "control-plane")
}

// NodeFromID returns the node name of a node-proxy identity, or false when id
// is not one.
func NodeFromID(id spiffeid.ID) (string, bool) {
	rest, ok := strings.CutPrefix(id.Path(), "/weft/node/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	return rest, true
}

// WorkloadFromID returns the namespace and service account of a workload
// identity, or false when id is not one.
func WorkloadFromID(id spiffeid.ID) (namespace, serviceAccount string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" {
		return "", "", false
	}
	return parts[1], parts[3], true
}
