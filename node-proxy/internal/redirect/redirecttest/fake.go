// Package redirecttest has a fake redirect.Redirector for the tests of
// packages that enroll pods, so they run without root or nftables.
package redirecttest

import (
	"sync"

	"github.com/weftmesh/weft/node-proxy/internal/redirect"
	"github.com/weftmesh/weft/node-proxy/netns"
)

// Op names a Redirector method.
type Op string

// The operations a Fake records.
const (
	OpInstall Op = "install"
	OpRemove  Op = "remove"
)

// Call is one recorded call.
type Call struct {
	Op     Op
	NS     *netns.NS       // as passed, possibly nil
	Config redirect.Config // the config given to Install; zero for Remove
}

// Fake is a redirect.Redirector that changes nothing and records every call.
// Install checks the config as the real one does, so an invalid config fails
// here too. Its zero value is ready; it is safe for concurrent use.
type Fake struct {
	// InstallErr and RemoveErr, when set, are returned by every Install or
	// Remove (which are still recorded): use them to test that a pod whose
	// rules cannot be installed is not acknowledged. Set them before the
	// Fake is shared.
	InstallErr error
	RemoveErr  error

	mu    sync.Mutex // guards calls
	calls []Call
}

var _ redirect.Redirector = (*Fake)(nil)

// Install records the call and returns InstallErr, or cfg's validation error.
func (f *Fake) Install(ns *netns.NS, cfg redirect.Config) error {
	f.record(Call{Op: OpInstall, NS: ns, Config: cfg})
	if f.InstallErr != nil {
		return f.InstallErr
	}
	return cfg.Validate()
}

// Remove records the call and returns RemoveErr.
func (f *Fake) Remove(ns *netns.NS) error {
	f.record(Call{Op: OpRemove, NS: ns})
	return f.RemoveErr
}

// Calls returns a copy of the calls so far, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

func (f *Fake) record(c Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}
