package xdsclient

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Defaults for the zero values of Config.
const (
	DefaultMinBackoff      = 250 * time.Millisecond
	DefaultMaxBackoff      = 30 * time.Second
	DefaultMaxMessageBytes = 64 << 20
)

// typePrefix starts every type URL the client accepts.
const typePrefix = "type.googleapis.com/"

// Config configures a Client.
type Config struct {
	// Addr is the control plane's ADS address, host:port (port 15012).
	// Required.
	Addr string
	// Node is the node name: the xDS node id, and the <node> of the node
	// SVID the server checks it against. Required.
	Node string
	// Types are the type URLs (type.googleapis.com/...) subscribed to, each
	// with a wildcard subscription. The Go type of each must be registered
	// in protoregistry.GlobalTypes (import its package): resources are
	// checked against it. Required, no duplicates.
	Types []string

	// SVID is the node SVID presented to the control plane. It is read at
	// every TLS handshake, so a renewed certificate is used by the next
	// connection. Required; usually the node's certificate manager.
	SVID x509svid.Source
	// Bundle verifies the control plane's certificate, read at every
	// handshake. Required; usually the node's certificate manager.
	Bundle x509bundle.Source
	// TrustDomain of the mesh: the server must present
	// certs.ControlPlaneID(TrustDomain). Required.
	TrustDomain spiffeid.TrustDomain

	// Apply is called, from Run's goroutine and one call at a time, with
	// the whole new state after each response that changes it. A non-nil
	// error rejects the response (NACK, with the error as error_detail)
	// and the state stays what it was. Nil means every valid response is
	// accepted.
	Apply func(State) error

	// MinBackoff is the first wait before reconnecting; it doubles at each
	// failed attempt up to MaxBackoff. Waits are jittered to between half
	// and all of that. Zero means DefaultMinBackoff / DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxMessageBytes is the largest response accepted, in bytes. Zero
	// means DefaultMaxMessageBytes.
	MaxMessageBytes int

	// Registerer receives the metrics; nil means they are not exported.
	Registerer prometheus.Registerer
	// Logger receives connection changes and rejected updates; nil means
	// slog.Default().
	Logger *slog.Logger
}

// validate checks c, fills in defaults and resolves the Go type of each
// type URL.
func (c *Config) validate() (map[string]protoreflect.MessageType, error) {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("Addr is required"))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("Node is required"))
	}
	if c.SVID == nil || c.Bundle == nil {
		errs = append(errs, errors.New("SVID and Bundle are required"))
	}
	if c.TrustDomain.IsZero() {
		errs = append(errs, errors.New("TrustDomain is required"))
	}
	if len(c.Types) == 0 {
		errs = append(errs, errors.New("Types is required"))
	}
	types := make(map[string]protoreflect.MessageType, len(c.Types))
	for _, t := range c.Types {
		if _, dup := types[t]; dup {
			errs = append(errs, fmt.Errorf("type %q is listed twice", t))
			continue
		}
		mt, err := findType(t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		types[t] = mt
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 || c.MaxMessageBytes < 0 {
		errs = append(errs, errors.New("MinBackoff, MaxBackoff and MaxMessageBytes must not be negative"))
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("MaxBackoff %s is shorter than MinBackoff %s", c.MaxBackoff, c.MinBackoff))
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("xdsclient: %w", errors.Join(errs...))
	}
	return types, nil
}

// findType returns the Go message of typeURL.
func findType(typeURL string) (protoreflect.MessageType, error) {
	if !strings.HasPrefix(typeURL, typePrefix) {
		return nil, fmt.Errorf("type %q does not start with %s", typeURL, typePrefix)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, fmt.Errorf("type %q has no registered Go type (import its package): %w", typeURL, err)
	}
	return mt, nil
}
