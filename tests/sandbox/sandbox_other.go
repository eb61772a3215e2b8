//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

// Sandbox is a built topology; it needs Linux.
type Sandbox struct{}

// Up is not supported off Linux.
func (t Topology) Up(ctx context.Context) (*Sandbox, error) { return nil, errors.ErrUnsupported }

// Cleanup is not supported off Linux.
func Cleanup(name string) error { return errors.ErrUnsupported }

// RunningNodes needs Linux network namespaces.
func RunningNodes(name string) ([]string, error) { return nil, errors.ErrUnsupported }

// AdminGet needs Linux network namespaces.
func AdminGet(ctx context.Context, node, url string) ([]byte, error) {
	return nil, errors.ErrUnsupported
}
