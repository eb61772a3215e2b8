package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/weftmesh/weft/certs"
	"github.com/weftmesh/weft/control-plane/internal/status"
	"github.com/weftmesh/weft/control-plane/internal/translate"
	"github.com/weftmesh/weft/control-plane/internal/xds"
)

// errNotSynced is what the xDS builder answers until the source has synced,
// so no node proxy is ever sent a partial configuration.
var errNotSynced = fmt.Errorf("configuration source not synced yet: %w", xds.ErrNotReady)

// build is the xDS Builder: the latest snapshot, translated once (per
// snapshot and CA) for all nodes, plus the node's own workloads.
func (cp *ControlPlane) build(node string) (map[string][]types.Resource, error) {
	if !cp.synced.Load() {
		return nil, errNotSynced
	}
	return cp.currentMesh().Node(node), nil
}

func (cp *ControlPlane) currentMesh() *translate.Mesh {
	snap, ca := cp.src.Snapshot(), cp.authority.CA()
	cp.meshMu.Lock()
	defer cp.meshMu.Unlock()
	if cp.mesh == nil || cp.meshSnap != snap || cp.meshCA != ca {
		// Next reuses the previous translation's resources whose inputs
		// did not change: a route change rebuilds one RouteConfiguration.
		cp.mesh = cp.mesh.Next(snap, translate.Options{TrustDomain: cp.cfg.TrustDomain,
			ClusterDomain: cp.cfg.ClusterDomain, TrustBundleRoots: certs.BundleDER(ca.Bundle())})
		cp.meshSnap, cp.meshCA = snap, ca
	}
	return cp.mesh
}

// pushChanges waits for the source to sync, then tells the xDS server about
// every change of the model or of the CA (its trust bundle travels in xDS).
// The xDS server debounces; translation happens in build.
func (cp *ControlPlane) pushChanges(ctx context.Context) error {
	if err := cp.src.WaitForSync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cp.synced.Store(true)
	cp.log.Info("configuration source synced; serving xDS")
	for {
		changed := cp.src.Changed()
		caChanged, _ := cp.authority.Changed()
		cp.xds.Notify()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-caChanged:
		}
	}
}

// statusDebounce groups bursts of changes before status is written.
const statusDebounce = 250 * time.Millisecond

// writeStatus runs on the leader only: it writes route and policy status
// for every change of the model, until ctx ends (leadership lost).
func (cp *ControlPlane) writeStatus(ctx context.Context) {
	if err := cp.src.WaitForSync(ctx); err != nil {
		return
	}
	cp.status.Reset() // another leader may have written since our last term
	for {
		changed := cp.src.Changed()
		snap := cp.src.Snapshot()
		res, err := cp.status.Write(ctx, status.Routes(snap), status.Policies(snap))
		var retry <-chan time.Time
		if err != nil && ctx.Err() == nil {
			cp.log.Warn("writing status; retrying in 5s", "err", err)
			retry = time.After(5 * time.Second)
		} else if res.Updated > 0 {
			cp.log.Info("status written", "updated", res.Updated, "unchanged", res.Unchanged)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(statusDebounce):
		}
	}
}
