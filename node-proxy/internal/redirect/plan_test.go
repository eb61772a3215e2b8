package redirect

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// docConfig is the example the interception doc prints.
var docConfig = Config{ProbeSources: []netip.Prefix{
	netip.MustParsePrefix("10.244.1.1/32"),
	netip.MustParsePrefix("fd00:10:244:1::1/128"),
}}

func TestRuleset(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{
			name: "defaults",
			cfg:  Config{},
			want: `table inet weft {
	chain outbound {
		type nat hook output priority -100; policy accept;
		oifname "lo" return
		meta mark 0x00000539 return
		meta l4proto tcp redirect to :15001
	}

	chain inbound {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "lo" return
		tcp dport 15008 return
		meta l4proto tcp redirect to :15006
	}
}
`,
		},
		{
			name: "custom ports, mark and probe sources",
			cfg: Config{
				OutboundPort: 25001, InboundPort: 25006, TunnelPort: 25008, Mark: 0xbeef,
				ProbeSources: []netip.Prefix{
					netip.MustParsePrefix("10.1.2.3/32"),
					netip.MustParsePrefix("10.9.9.77/24"), // masked
					netip.MustParsePrefix("10.1.2.3/32"),  // duplicate, dropped
					netip.MustParsePrefix("2001:db8::1/128"),
					netip.MustParsePrefix("2001:db8:1::/48"),
				},
			},
			want: `table inet weft {
	chain outbound {
		type nat hook output priority -100; policy accept;
		oifname "lo" return
		meta mark 0x0000beef return
		meta l4proto tcp redirect to :25001
	}

	chain inbound {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "lo" return
		ip saddr 10.1.2.3 return
		ip saddr 10.9.9.0/24 return
		ip6 saddr 2001:db8::1 return
		ip6 saddr 2001:db8:1::/48 return
		tcp dport 25008 return
		meta l4proto tcp redirect to :25006
	}
}
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Ruleset(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Ruleset mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string // substring; empty means valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "probe prefix", cfg: Config{ProbeSources: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		{name: "outbound equals inbound", cfg: Config{OutboundPort: 15006}, wantErr: "ports must differ"},
		{name: "inbound equals default tunnel", cfg: Config{InboundPort: 15008}, wantErr: "ports must differ"},
		{name: "invalid prefix", cfg: Config{ProbeSources: []netip.Prefix{{}}}, wantErr: "not a valid address"},
		{name: "all of IPv4", cfg: Config{ProbeSources: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, wantErr: "exempt all inbound"},
		{name: "all of IPv6", cfg: Config{ProbeSources: []netip.Prefix{netip.MustParsePrefix("::/0")}}, wantErr: "exempt all inbound"},
		{name: "IPv4-mapped", cfg: Config{ProbeSources: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.1/128")}}, wantErr: "IPv4 form"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("Validate() = nil, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
			if _, rerr := Ruleset(tc.cfg); (rerr == nil) != (err == nil) {
				t.Errorf("Ruleset error %v disagrees with Validate error %v", rerr, err)
			}
		})
	}
}

// TestDocShowsRuleset keeps the rules printed in the interception doc equal
// to what Install creates.
func TestDocShowsRuleset(t *testing.T) {
	const doc = "../../../docs/concepts/interception.md"
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatalf("read %s: %v", doc, err)
	}
	want, err := Ruleset(docConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "```\n"+want+"```\n") {
		t.Errorf("%s does not show the current ruleset for its example config; paste this in its code block:\n%s", doc, want)
	}
}
