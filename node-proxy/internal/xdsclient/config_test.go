package xdsclient

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/certs/certstest"
)

func TestNewChecksConfig(t *testing.T) {
	e := newEnv(t)
	good := func() Config {
		return Config{Addr: "cp:15012", Node: e.node, Types: nodeTypes, SVID: e.svid, Bundle: e.ca.Bundle(), TrustDomain: certstest.TrustDomain}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		err    string // "" means valid
	}{
		{name: "valid", modify: func(*Config) {}},
		{name: "no address", modify: func(c *Config) { c.Addr = "" }, err: "Addr is required"},
		{name: "no node", modify: func(c *Config) { c.Node = "" }, err: "Node is required"},
		{name: "no SVID", modify: func(c *Config) { c.SVID = nil }, err: "SVID and Bundle are required"},
		{name: "no trust domain", modify: func(c *Config) { c.TrustDomain = spiffeid.TrustDomain{} }, err: "TrustDomain is required"},
		{name: "no types", modify: func(c *Config) { c.Types = nil }, err: "Types is required"},
		{name: "duplicate type", modify: func(c *Config) { c.Types = []string{listenerType, listenerType} }, err: "listed twice"},
		{name: "not a type URL", modify: func(c *Config) { c.Types = []string{"envoy.config.listener.v3.Listener"} }, err: "does not start with type.googleapis.com/"},
		{name: "unknown type", modify: func(c *Config) { c.Types = []string{typePrefix + "weft.xds.v1.Nope"} }, err: "no registered Go type"},
		{name: "backoff order", modify: func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, err: "shorter than MinBackoff"},
		{name: "negative", modify: func(c *Config) { c.MaxMessageBytes = -1 }, err: "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.modify(&cfg)
			_, err := New(cfg)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("New: %v, want no error", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("New: %v, want an error containing %q", err, tt.err)
			}
		})
	}

	c, err := New(good())
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.MinBackoff != DefaultMinBackoff || c.cfg.MaxBackoff != DefaultMaxBackoff || c.cfg.MaxMessageBytes != DefaultMaxMessageBytes || c.log == nil {
		t.Errorf("defaults not applied: %+v", c.cfg)
	}

	reg := prometheus.NewRegistry()
	cfg := good()
	cfg.Registerer = reg
	if _, err := New(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "register metrics") {
		t.Errorf("second client on one registry: %v, want a registration error", err)
	}
}
