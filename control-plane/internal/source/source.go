// Package source names what the control plane needs from a configuration
// source. Two implement it: source/kube (client-go informers on a cluster)
// and source/dir (a directory of YAML files, --config-dir). Both convert
// objects with source/convert, so the same objects give the same model.
//
// How a consumer uses a Source:
//
//	if err := src.WaitForSync(ctx); err != nil { ... }
//	for {
//		changed := src.Changed() // take the channel first ...
//		snap := src.Snapshot()   // ... then the state, so no change is missed
//		publish(snap)
//		select {
//		case <-changed: // debounce here: bursts of changes close one channel
//		case <-ctx.Done():
//			return
//		}
//	}
//
// Each implementation also has a Run method that watches until its context
// ends; its parameters differ (dir polls at an interval), so it is not part
// of the interface.
package source

import (
	"context"

	"github.com/weftmesh/weft/control-plane/internal/model"
)

// Source is where the mesh configuration comes from.
type Source interface {
	// WaitForSync blocks until Snapshot reflects a complete first read of
	// the source, or ctx ends.
	WaitForSync(ctx context.Context) error
	// Snapshot returns the current state. The returned Snapshot is never
	// modified; a change produces a new one. Callers must not modify it.
	Snapshot() *model.Snapshot
	// Changed returns a channel that is closed at the next change after the
	// call. Any number of goroutines may wait on it; many changes in a row
	// may close a single channel, so a consumer always reads Snapshot after
	// a wake-up instead of counting wake-ups.
	Changed() <-chan struct{}
}
