//go:build !linux

package sandbox

import (
	"context"
	"errors"
)

type meshRun struct{}

// Up is not supported off Linux.
func (c MeshConfig) Up(ctx context.Context) (*Mesh, error) { return nil, errors.ErrUnsupported }

// Down does nothing off Linux, where no Mesh can be built.
func (m *Mesh) Down() error { return nil }
