package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/certs/manager"
)

func validConfig() Config {
	return Config{
		Node:            "node-a",
		ControlPlane:    "10.0.0.1:15012",
		TrustDomain:     spiffeid.RequireTrustDomainFromString("cluster.local"),
		CABundleFile:    "/etc/weft/ca.crt",
		Credential:      manager.JoinTokenFile("/etc/weft/token"),
		EnrollSocket:    "/var/run/weft/node-proxy.sock",
		StateDir:        "/var/lib/weft/node-proxy",
		AdminListen:     "127.0.0.1:15000",
		MetricsListen:   ":15020",
		ReadinessListen: ":15021",
	}
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no node", func(c *Config) { c.Node = "" }, "node name is required"},
		{"bad control plane", func(c *Config) { c.ControlPlane = "cp" }, `control plane address "cp"`},
		{"no trust domain", func(c *Config) { c.TrustDomain = spiffeid.TrustDomain{} }, "trust domain"},
		{"no bundle", func(c *Config) { c.CABundleFile = "" }, "CA bundle"},
		{"no credential", func(c *Config) { c.Credential = nil }, "credential"},
		{"relative socket", func(c *Config) { c.EnrollSocket = "sock" }, "enrollment socket"},
		{"relative state", func(c *Config) { c.StateDir = "state" }, "state dir"},
		{"bad admin", func(c *Config) { c.AdminListen = "15000" }, "admin address"},
		{"negative wait", func(c *Config) { c.EnrollWait = -time.Second }, "negative"},
		{"same ports", func(c *Config) { c.Redirect.InboundPort = 15001 }, "15001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v; want an error containing %q", err, tc.want)
			}
		})
	}
	// Empty listen addresses disable those servers.
	c := validConfig()
	c.AdminListen, c.MetricsListen, c.ReadinessListen = "", "", ""
	if err := c.Validate(); err != nil {
		t.Errorf("empty listen addresses: %v", err)
	}
}
