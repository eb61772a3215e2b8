//go:build !linux

package cli

import (
	"context"
	"errors"
	"io"
)

// runSandboxDemo needs Linux: the sandbox is network namespaces.
func runSandboxDemo(context.Context, io.Writer, sandboxDemoOptions) error {
	return errors.New("sandbox demo needs Linux: the sandbox is built of network namespaces")
}
