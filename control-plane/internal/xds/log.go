package xds

import (
	"context"
	"fmt"
	"log/slog"

	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
)

// Log keys.
const (
	logKeyNode      = "node"
	logKeyErr       = "err"
	logKeyReason    = "reason"
	logKeyProtocol  = "protocol"
	logKeyVersion   = "version"
	logKeyTrigger   = "trigger"
	logKeyComponent = "component"
	logKeyType      = "type"
	logKeyNonce     = "nonce"
)

// gcpLogger sends go-control-plane's own log lines to slog: its debug and
// info lines (one per watch) at debug level, warnings and errors as such.
type gcpLogger struct{ log *slog.Logger }

var _ gcplog.Logger = gcpLogger{}

func (l gcpLogger) Debugf(format string, args ...any) { l.at(slog.LevelDebug, format, args) }
func (l gcpLogger) Infof(format string, args ...any)  { l.at(slog.LevelDebug, format, args) }
func (l gcpLogger) Warnf(format string, args ...any)  { l.at(slog.LevelWarn, format, args) }
func (l gcpLogger) Errorf(format string, args ...any) { l.at(slog.LevelError, format, args) }

func (l gcpLogger) at(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, fmt.Sprintf(format, args...), logKeyComponent, "go-control-plane")
}
